// Post the implicit-flow fragment (id_token, state or error) to the server, which verifies it.
(function () {
  const form = document.getElementById("implicit");
  const params = new URLSearchParams(window.location.hash.slice(1));
  for (const [name, value] of params) {
    const input = document.createElement("input");
    input.type = "hidden";
    input.name = name;
    input.value = value;
    form.appendChild(input);
  }
  form.submit();
})();
