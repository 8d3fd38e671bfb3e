// ktriage fleet dashboard: the only script. Choosing a kind or a state re-filters the table at once;
// everything else works without it (plain links and a GET form).
document.addEventListener("DOMContentLoaded", function () {
  var form = document.getElementById("filters");
  if (!form) return;
  form.querySelectorAll("select").forEach(function (sel) {
    sel.addEventListener("change", function () { form.submit(); });
  });
});
