/* The command centre's pages: the map (ECharts with the grids' GeoJSON registered: no tile
   service), the trend chart, and the poll that shows a change made in chat within 10 s. */
(function () {
  "use strict";
  var POLL_MS = 5000;

  function json(id) {
    var el = document.getElementById(id);
    return el ? JSON.parse(el.textContent) : null;
  }

  function pct(v) { return v === null || v === undefined ? "—" : Math.round(v * 100) + "%"; }

  // -- the map ------------------------------------------------------------------------
  function drawMap(el, data, labels) {
    var chart = echarts.getInstanceByDom(el) || echarts.init(el, null, {renderer: "canvas"});
    var colour = document.getElementById("colour");
    var key = colour ? colour.value : "open";
    var isRate = key.indexOf("_rate") > 0;
    echarts.registerMap("grids", data.geojson);
    var values = data.grids.map(function (g) {
      var v = g[key];
      return {name: g.name, value: v === null || v === undefined ? (isRate ? null : 0) : (isRate ? v * 100 : v), grid: g};
    });
    var max = isRate ? 100 : Math.max(1, Math.max.apply(null, values.map(function (v) { return v.value || 0; })));
    chart.setOption({
      animation: false,
      tooltip: {
        trigger: "item",
        formatter: function (p) {
          if (p.seriesType === "scatter") {
            var b = p.data;
            return b.name + "<br>" + labels.open + " " + b.open + " · " + labels.overdue + " " + b.overdue;
          }
          var g = p.data && p.data.grid;
          if (!g) { return p.name; }
          return g.name + "<br>" + labels.open + " " + g.open + " · " + labels.overdue + " " + g.overdue +
            "<br>" + labels.response_rate + " " + pct(g.response_rate) + " · " + labels.solved_rate + " " +
            pct(g.solved_rate) + " · " + labels.satisfaction_rate + " " + pct(g.satisfaction_rate);
        }
      },
      visualMap: {
        min: 0, max: max, calculable: true, left: 8, bottom: 8, itemHeight: 90,
        seriesIndex: 0,
        inRange: {color: isRate ? ["#d94e5d", "#eac736", "#50a3ba"] : ["#e8f3ea", "#f2c14e", "#d94e5d"]},
        text: [isRate ? "100%" : String(max), "0"]
      },
      geo: {map: "grids", roam: true, label: {show: true, fontSize: 11}, itemStyle: {borderColor: "#555"}},
      series: [
        {type: "map", geoIndex: 0, name: key, data: values},
        {type: "scatter", coordinateSystem: "geo", name: labels.buildings, symbolSize: function (v, p) {
          return 6 + Math.min(10, (p.data.open || 0) * 2);
        }, itemStyle: {color: "#2f4f8f"}, data: data.buildings}
      ]
    }, true);
    return chart;
  }

  function setupMap() {
    var el = document.getElementById("map");
    var data = json("map-data");
    if (!el || !data || typeof echarts === "undefined") { return; }
    var labels = json("map-labels");
    var chart = drawMap(el, data, labels);
    window.addEventListener("resize", function () { chart.resize(); });
    document.getElementById("colour").addEventListener("change", function () { drawMap(el, data, labels); });
    setInterval(function () {
      fetch("/centre/map.json", {credentials: "same-origin"}).then(function (r) {
        return r.ok ? r.json() : null;
      }).then(function (fresh) {
        if (!fresh) { return; }
        data = fresh;
        drawMap(el, data, labels);
        var open = 0, late = 0;
        data.grids.forEach(function (g) { open += g.open; late += g.overdue; });
        document.getElementById("sum-open").textContent = open;
        document.getElementById("sum-overdue").textContent = late;
      }).catch(function () {});
    }, POLL_MS);
  }

  // -- 战时: the incident's grids, red where nobody is on site ---------------------------
  function drawMobilise(el, data, labels) {
    var chart = echarts.getInstanceByDom(el) || echarts.init(el, null, {renderer: "canvas"});
    echarts.registerMap("mobilise", data.geojson);
    chart.setOption({
      animation: false,
      tooltip: {
        trigger: "item",
        formatter: function (p) {
          var g = p.data && p.data.grid;
          if (!g) { return p.name; }
          return g.name + "<br>" + labels.called + " " + g.called + " · " + labels.answered + " " + g.answered +
            "<br>" + labels.on_site + " " + g.on_site + " · " + labels.open_tasks + " " + g.open_tasks;
        }
      },
      visualMap: {type: "piecewise", left: 8, bottom: 8, seriesIndex: 0, pieces: [
        {value: 0, color: "#d94e5d", label: labels.on_site + " 0"},
        {gt: 0, color: "#50a37a", label: labels.on_site + " ≥1"}]},
      geo: {map: "mobilise", roam: true, label: {show: true, fontSize: 11}, itemStyle: {borderColor: "#555"}},
      series: [{type: "map", geoIndex: 0, name: labels.on_site, data: data.grids.map(function (g) {
        return {name: g.name, value: g.on_site, grid: g};
      })}]
    }, true);
    return chart;
  }

  function setupMobilise() {
    var el = document.getElementById("mobilise-map");
    var data = json("mobilise-data");
    if (!el || !data || typeof echarts === "undefined") { return; }
    var labels = json("mobilise-labels");
    var chart = drawMobilise(el, data, labels);
    window.addEventListener("resize", function () { chart.resize(); });
    setInterval(function () {
      fetch(el.getAttribute("data-url"), {credentials: "same-origin"}).then(function (r) {
        return r.ok ? r.json() : null;
      }).then(function (fresh) {
        if (!fresh) { return; }
        drawMobilise(el, fresh, labels);
        var sum = function (key) { return fresh.grids.reduce(function (n, g) { return n + g[key]; }, 0); };
        document.getElementById("sum-called").textContent = sum("called");
        document.getElementById("sum-answered").textContent = sum("answered");
        document.getElementById("sum-on-site").textContent = sum("on_site");
        document.getElementById("sum-tasks").textContent = sum("open_tasks");
        var empty = fresh.grids.filter(function (g) { return g.on_site === 0; }).map(function (g) { return g.name; });
        document.getElementById("sum-empty").textContent = empty.length;
        var body = document.querySelector("#mobilise-grids tbody");
        if (body) {
          body.textContent = "";
          fresh.grids.forEach(function (g) {
            var tr = document.createElement("tr");
            tr.setAttribute("data-grid", g.code);
            if (g.on_site === 0 && !fresh.closed) { tr.className = "late"; }
            [g.name, g.called, g.coming, g.late, g.cannot, g.no_answer, g.on_site, g.open_tasks].forEach(function (v) {
              var td = document.createElement("td");
              td.textContent = v;
              tr.appendChild(td);
            });
            body.appendChild(tr);
          });
        }
        var tasks = document.getElementById("task-list");
        if (tasks) {
          tasks.textContent = "";
          fresh.tasks.forEach(function (text) {
            var li = document.createElement("li");
            li.textContent = text;
            tasks.appendChild(li);
          });
        }
        var line = document.getElementById("empty");
        if (line) { line.textContent = empty.length ? "⚠ " + labels.empty + "：" + empty.join("、") : labels.all_manned; }
      }).catch(function () {});
    }, POLL_MS);
  }

  // -- the trend ----------------------------------------------------------------------
  function setupTrend() {
    var el = document.getElementById("trend");
    var data = json("chart-data");
    if (!el || !data || typeof echarts === "undefined") { return; }
    var labels = json("map-labels");
    var chart = echarts.init(el);
    var keys = ["response_rate", "solved_rate", "satisfaction_rate"];
    chart.setOption({
      animation: false,
      tooltip: {trigger: "axis", valueFormatter: function (v) { return v === null ? "—" : v + "%"; }},
      legend: {top: 0},
      grid: {left: 40, right: 10, top: 30, bottom: 30},
      xAxis: {type: "category", data: data.trend.map(function (m) { return m.month; })},
      yAxis: {type: "value", min: 0, max: 100, axisLabel: {formatter: "{value}%"}},
      series: keys.map(function (k) {
        return {type: "line", name: labels[k], connectNulls: true, data: data.trend.map(function (m) {
          return m[k] === null ? null : Math.round(m[k] * 1000) / 10;
        })};
      })
    });
    window.addEventListener("resize", function () { chart.resize(); });
  }

  // -- a change made elsewhere: reload ----------------------------------------------------
  function setupLive() {
    var live = document.getElementById("live");
    if (!live) { return; }
    var last = live.getAttribute("data-last");
    setInterval(function () {
      fetch(live.getAttribute("data-url"), {credentials: "same-origin"}).then(function (r) {
        return r.ok ? r.json() : null;
      }).then(function (v) {
        if (v && String(v.last) !== last) { window.location.reload(); }
      }).catch(function () {});
    }, POLL_MS);
  }

  setupMap();
  setupMobilise();
  setupTrend();
  setupLive();
})();
