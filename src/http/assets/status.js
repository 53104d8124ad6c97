// The status page (src/http/page.rs), served as /status.js: the page's
// content security policy allows no inline script. The page reads the
// same without it; with it, times are shown in the viewer's zone and the
// page refreshes itself.
"use strict";

const pad = (n) => String(n).padStart(2, "0");
const clock = (d) => `${pad(d.getHours())}:${pad(d.getMinutes())}`;

// The viewer's offset from UTC now, as "UTC+05:30" ("UTC" when none).
function zone() {
  const east = -new Date().getTimezoneOffset();
  if (east === 0) return "UTC";
  const a = Math.abs(east);
  return `UTC${east < 0 ? "-" : "+"}${pad(Math.floor(a / 60))}:${pad(a % 60)}`;
}

// The server writes times in UTC: <time datetime> elements (their title
// keeps UTC, for hovering) and the chart's labels (data-datetime). Each
// is rewritten in the viewer's zone.
function local(root) {
  for (const t of root.querySelectorAll("time[datetime]")) {
    const d = new Date(t.dateTime);
    if (Number.isNaN(d.getTime())) continue;
    t.textContent = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
      `${clock(d)}:${pad(d.getSeconds())}`;
  }
  for (const t of root.querySelectorAll("text[data-datetime]")) {
    const d = new Date(t.dataset.datetime);
    if (!Number.isNaN(d.getTime())) t.textContent = clock(d);
  }
  for (const z of root.querySelectorAll(".zone")) z.textContent = zone();
  const note = root.querySelector("#zone");
  if (note && zone() !== "UTC") {
    note.textContent = `your time zone (${zone()}); hover over one for UTC`;
  }
}

local(document);

// A fresh <main> every 5 seconds, swapped in place.
setInterval(async () => {
  try {
    const r = await fetch(location.href, { cache: "no-store" });
    if (!r.ok) return;
    const d = new DOMParser().parseFromString(await r.text(), "text/html");
    const m = d.querySelector("main");
    if (m) {
      local(m);
      document.querySelector("main").replaceWith(m);
    }
    document.body.dataset.refreshed = Date.now();
  } catch (e) {
    // Offline or restarting: the page stays as it was.
  }
}, 5000);
