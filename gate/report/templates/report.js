// Filters the report's rows by status and by a text search; no network, no server.
(function () {
  "use strict";
  var rows = Array.prototype.slice.call(document.querySelectorAll("tr.result"));
  var boxes = Array.prototype.slice.call(document.querySelectorAll("input[name=status]"));
  var search = document.getElementById("search");
  var shown = document.getElementById("shown");
  var empty = document.getElementById("empty");
  function apply() {
    var wanted = {};
    boxes.forEach(function (box) { wanted[box.value] = box.checked; });
    var query = search.value.trim().toLowerCase();
    var count = 0;
    rows.forEach(function (row) {
      var visible = wanted[row.dataset.status] === true &&
        (query === "" || row.dataset.text.indexOf(query) !== -1);
      row.hidden = !visible;
      if (visible) { count += 1; }
    });
    shown.textContent = count + " of " + rows.length + " shown";
    if (empty) { empty.hidden = count !== 0 || rows.length === 0; }
  }
  boxes.forEach(function (box) { box.addEventListener("change", apply); });
  search.addEventListener("input", apply);
  document.getElementById("controls").addEventListener("submit", function (event) {
    event.preventDefault();
  });
  apply();
})();
