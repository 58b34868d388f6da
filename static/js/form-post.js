// The form_post response mode (OAuth 2.0 Form Post Response Mode): submits the page's form to
// the application's redirect URI as soon as the page loads. A script file, not inline script,
// so the page keeps the strict CSP; without scripts the visible button does the same.
(function () {
  "use strict";

  const form = document.getElementById("form-post");
  // the prototype's submit: a field named "submit" cannot shadow it
  if (form) HTMLFormElement.prototype.submit.call(form);
})();
