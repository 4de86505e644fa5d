// meshray view: sorting and filtering the trace list, opening waterfalls. Reads nothing
// but the page's own attributes; loads nothing.
(function () {
  'use strict';
  var root = document.documentElement;
  var table = document.getElementById('trace-table');
  var filter = document.getElementById('trace-filter');
  var shown = document.getElementById('trace-shown');
  var rows = table ? Array.prototype.slice.call(table.tBodies[0].rows) : [];

  function sortBy(th) {
    var numeric = th.getAttribute('data-sort') === 'num';
    var col = th.cellIndex;
    var dir = th.getAttribute('aria-sort') === 'ascending' ? -1 : 1;
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (h) { h.removeAttribute('aria-sort'); });
    th.setAttribute('aria-sort', dir === 1 ? 'ascending' : 'descending');
    var keyed = rows.map(function (row, at) {
      var v = row.cells[col].getAttribute('data-v');
      return { row: row, at: at, v: numeric ? parseFloat(v) : v };
    });
    keyed.sort(function (a, b) {
      var c = numeric ? a.v - b.v : (a.v < b.v ? -1 : a.v > b.v ? 1 : 0);
      return c * dir || a.at - b.at;
    });
    var body = table.tBodies[0];
    var frag = document.createDocumentFragment();
    keyed.forEach(function (k) { frag.appendChild(k.row); });
    body.appendChild(frag);
    rows = keyed.map(function (k) { return k.row; });
  }

  function applyFilter() {
    var q = filter.value.trim().toLowerCase();
    var count = 0;
    rows.forEach(function (row) {
      var hit = !q || row.getAttribute('data-search').indexOf(q) >= 0;
      row.hidden = !hit;
      if (hit) { count++; }
    });
    shown.textContent = String(count);
  }

  function openTrace(id) {
    var el = id && document.getElementById(id);
    if (el && el.tagName === 'DETAILS') {
      el.open = true;
      el.scrollIntoView({ block: 'start' });
    }
  }

  if (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th) {
      th.addEventListener('click', function () { sortBy(th); });
    });
    table.tBodies[0].addEventListener('click', function (e) {
      var row = e.target.closest('tr[data-trace]');
      if (!row) { return; }
      e.preventDefault();
      var id = row.getAttribute('data-trace');
      if (location.hash === '#' + id) { openTrace(id); } else { location.hash = id; }
    });
    filter.addEventListener('input', applyFilter);
  }
  document.querySelectorAll('#service-map g.node').forEach(function (node) {
    node.addEventListener('click', function () {
      if (!filter) { return; }
      filter.value = node.getAttribute('data-service');
      applyFilter();
      document.getElementById('traces').scrollIntoView({ block: 'start' });
    });
  });
  window.addEventListener('hashchange', function () { openTrace(location.hash.slice(1)); });
  if (location.hash) { openTrace(location.hash.slice(1)); }

  root.setAttribute('data-rows', String(rows.length));
  root.setAttribute('data-ready-ms', performance.now().toFixed(1));
  root.setAttribute('data-js', 'ready');
})();
