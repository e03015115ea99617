// Filters the page's rows by status and by a text search; no network, no server.
// The choice is kept in sessionStorage, so the status page's refresh does not lose it.
(function () {
  "use strict";
  var rows = Array.prototype.slice.call(document.querySelectorAll("tr.result"));
  var boxes = Array.prototype.slice.call(document.querySelectorAll("input[name=status]"));
  var search = document.getElementById("search");
  var shown = document.getElementById("shown");
  var empty = document.getElementById("empty");
  var key = "sealgate-filter:" + location.pathname;
  function load() {
    try {
      var saved = JSON.parse(sessionStorage.getItem(key) || "null");
      if (!saved) { return; }
      search.value = saved.query || "";
      boxes.forEach(function (box) {
        if (Object.prototype.hasOwnProperty.call(saved.off || {}, box.value)) { box.checked = false; }
      });
    } catch (e) { /* storage unavailable (a file:// page in some browsers): no memory */ }
  }
  function save(wanted, query) {
    var off = {};
    boxes.forEach(function (box) { if (!wanted[box.value]) { off[box.value] = true; } });
    try { sessionStorage.setItem(key, JSON.stringify({ query: query, off: off })); } catch (e) { }
  }
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
    save(wanted, search.value);
  }
  boxes.forEach(function (box) { box.addEventListener("change", apply); });
  search.addEventListener("input", apply);
  document.getElementById("controls").addEventListener("submit", function (event) {
    event.preventDefault();
  });
  load();
  apply();
})();
