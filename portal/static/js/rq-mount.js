/* rq-dashboard, mounted in the portal: its jQuery POSTs (delete, requeue, empty, compact) carry
   the portal's CSRF token. The token comes from this script tag's data attribute, so no
   inline script is needed (the portal's Content-Security-Policy forbids them). */
(function () {
  "use strict";
  var tag = document.currentScript;
  var token = tag && tag.getAttribute("data-csrf-token");
  if (window.jQuery && token) {
    window.jQuery.ajaxSetup({ headers: { "X-CSRFToken": token } });
  }
})();
