"""Campaign rows and what clients send about them.

`records`: the empty shell a seeder fills, the master-template lookup and content counts;
`input`: validating a client's campaign fields before anything touches the pool.
"""
