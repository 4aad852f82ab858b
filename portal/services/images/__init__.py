"""Image files and the records that use them.

`store` is the interface every backend implements (and the local-file backend); `imagekit` the
ImageKit backend; `backend` picks one from the settings; `blobs` attaches, shares, detaches and
purges (many attachments may share one blob).
"""
