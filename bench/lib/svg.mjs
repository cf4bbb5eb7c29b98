// Hand-written SVG: one panel per measurement, either the empirical CDF of each series'
// latencies (x: milliseconds, y: fraction of requests/runs at or below x; cdfChart) or a value
// against a size (x: e.g. containers present, y: milliseconds/MiB; lineChart).

const COLORS = { berth: '#1f77b4', dockerd: '#d62728', 'raw runc': '#2ca02c', 'berth API': '#1f77b4', 'dockerd API': '#d62728', 'raw runc, runc spec defaults': '#2ca02c' };
// secondary series (API without the CLI, other floor, p90, memory at rest) are dashed
const dashed = (name) => / API$|defaults$| p90$| at rest$/.test(name);
const colorOf = (name, i) => COLORS[name] ?? COLORS[name.replace(/ (API|p90|at rest)$/, '')] ?? ['#9467bd', '#8c564b', '#e377c2'][i % 3];
const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

function niceStep(max) {
  const raw = max / 5;
  const p = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 2.5, 5, 10].map((m) => m * p).find((s) => s >= raw) ?? p * 10;
}

const W = 900;
const L = 70;
const R = 260;

/** The SVG document: the title, then one panel of height ph each, drawn by draw(panel, geometry, out). */
function panelled(panels, title, ph, draw) {
  const top = title ? 34 : 10;
  const H = top + panels.length * (ph + 20);
  const out = [`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`, `<rect width="100%" height="100%" fill="white"/>`];
  if (title) out.push(`<text x="${W / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">${esc(title)}</text>`);
  panels.forEach((panel, pi) => {
    const y0 = top + pi * (ph + 20);
    draw(panel, { y0, plotTop: y0 + 24, plotH: ph - 60, plotW: W - L - R }, out);
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}

/** panels: [{title, series: [{name, values(ms)}]}] */
export function cdfChart(panels, { title = '' } = {}) {
  return panelled(panels, title, 270, (panel, { y0, plotTop, plotH, plotW }, out) => {
    const all = panel.series.flatMap((s) => s.values);
    const sortedAll = [...all].sort((a, b) => a - b);
    // x range: up to the 99.5th percentile of all series so that one outlier does not flatten the plot
    const xmax = Math.max(1e-3, sortedAll[Math.min(sortedAll.length - 1, Math.floor(sortedAll.length * 0.995))] ?? 1) * 1.05;
    const step = niceStep(xmax);
    const X = (v) => +(L + (Math.min(v, xmax) / xmax) * plotW).toFixed(1);
    const Y = (f) => plotTop + plotH - f * plotH;
    out.push(`<text x="${L}" y="${y0 + 14}" font-weight="bold">${esc(panel.title)}</text>`);
    out.push(`<rect x="${L}" y="${plotTop}" width="${plotW}" height="${plotH}" fill="none" stroke="#999"/>`);
    for (let v = 0; v <= xmax + 1e-9; v += step) {
      out.push(`<line x1="${X(v)}" y1="${plotTop}" x2="${X(v)}" y2="${plotTop + plotH}" stroke="#eee"/>`);
      out.push(`<text x="${X(v)}" y="${plotTop + plotH + 15}" text-anchor="middle">${+v.toFixed(3)}</text>`);
    }
    for (const f of [0, 0.5, 0.9, 1]) {
      out.push(`<line x1="${L}" y1="${Y(f)}" x2="${L + plotW}" y2="${Y(f)}" stroke="#eee"/>`);
      out.push(`<text x="${L - 6}" y="${Y(f) + 4}" text-anchor="end">${f === 0.5 ? 'p50' : f === 0.9 ? 'p90' : f}</text>`);
    }
    out.push(`<text x="${L + plotW / 2}" y="${plotTop + plotH + 32}" text-anchor="middle" fill="#444">ms</text>`);
    panel.series.forEach((s, si) => {
      const v = [...s.values].sort((a, b) => a - b);
      if (!v.length) return;
      // at most ~400 points per curve
      const stride = Math.max(1, Math.floor(v.length / 400));
      const pts = [`${X(0).toFixed(1)},${Y(0).toFixed(1)}`];
      for (let i = 0; i < v.length; i += stride) {
        pts.push(`${X(v[i]).toFixed(1)},${Y(i / v.length).toFixed(1)}`, `${X(v[i]).toFixed(1)},${Y((i + 1) / v.length).toFixed(1)}`);
      }
      pts.push(`${X(v[v.length - 1]).toFixed(1)},${Y(1).toFixed(1)}`);
      const color = colorOf(s.name, si);
      out.push(`<polyline fill="none" stroke="${color}" stroke-width="2"${dashed(s.name) ? ' stroke-dasharray="6 4"' : ''} points="${pts.join(' ')}"/>`);
      const med = v[Math.ceil(0.5 * v.length) - 1];
      const p90 = v[Math.ceil(0.9 * v.length) - 1];
      const ly = plotTop + 12 + si * 31;
      out.push(`<line x1="${L + plotW + 12}" y1="${ly - 4}" x2="${L + plotW + 32}" y2="${ly - 4}" stroke="${color}" stroke-width="3"${dashed(s.name) ? ' stroke-dasharray="6 4"' : ''}/>`);
      out.push(`<text x="${L + plotW + 38}" y="${ly}">${esc(s.name)} (n=${v.length})</text>`);
      out.push(`<text x="${L + plotW + 38}" y="${ly + 14}" fill="#444">p50 ${med.toFixed(1)} · p90 ${p90.toFixed(1)} ms</text>`);
    });
  });
}

/**
 * panels: [{title, xLabel, series: [{name, points: [[x, y], …]}]}]. The x axis is linear and marks
 * every x that occurs (the sizes measured); y starts at 0 (or below, for negative values).
 */
export function lineChart(panels, { title = '' } = {}) {
  return panelled(panels, title, 300, (panel, { y0, plotTop, plotH, plotW }, out) => {
    const pts = panel.series.flatMap((s) => s.points).filter(([, y]) => Number.isFinite(y));
    const xsAll = [...new Set(pts.map(([x]) => x))].sort((a, b) => a - b);
    const xmax = Math.max(1, ...xsAll);
    const ymax = Math.max(1e-3, ...pts.map(([, y]) => y)) * 1.08;
    const ymin = Math.min(0, ...pts.map(([, y]) => y)) * 1.08;
    const step = niceStep(ymax - ymin);
    const X = (v) => +(L + (v / xmax) * plotW).toFixed(1);
    const Y = (v) => +(plotTop + plotH - ((v - ymin) / (ymax - ymin)) * plotH).toFixed(1);
    out.push(`<text x="${L}" y="${y0 + 14}" font-weight="bold">${esc(panel.title)}</text>`);
    out.push(`<rect x="${L}" y="${plotTop}" width="${plotW}" height="${plotH}" fill="none" stroke="#999"/>`);
    for (let v = Math.ceil(ymin / step) * step; v <= ymax + 1e-9; v += step) {
      out.push(`<line x1="${L}" y1="${Y(v)}" x2="${L + plotW}" y2="${Y(v)}" stroke="${Math.abs(v) < 1e-9 ? '#999' : '#eee'}"/>`);
      out.push(`<text x="${L - 6}" y="${Y(v) + 4}" text-anchor="end">${+v.toFixed(3)}</text>`);
    }
    for (const x of xsAll) {
      out.push(`<line x1="${X(x)}" y1="${plotTop}" x2="${X(x)}" y2="${plotTop + plotH}" stroke="#eee"/>`);
      out.push(`<text x="${X(x)}" y="${plotTop + plotH + 15}" text-anchor="middle">${x}</text>`);
    }
    out.push(`<text x="${L + plotW / 2}" y="${plotTop + plotH + 32}" text-anchor="middle" fill="#444">${esc(panel.xLabel ?? '')}</text>`);
    panel.series.forEach((s, si) => {
      const p = s.points.filter(([, y]) => Number.isFinite(y));
      if (!p.length) return;
      const color = colorOf(s.name, si);
      const dash = dashed(s.name) ? ' stroke-dasharray="6 4"' : '';
      out.push(`<polyline fill="none" stroke="${color}" stroke-width="2"${dash} points="${p.map(([x, y]) => `${X(x)},${Y(y)}`).join(' ')}"/>`);
      for (const [x, y] of p) out.push(`<circle cx="${X(x)}" cy="${Y(y)}" r="3" fill="${color}"/>`);
      const ly = plotTop + 12 + si * 31;
      const [lx, last] = p[p.length - 1];
      out.push(`<line x1="${L + plotW + 12}" y1="${ly - 4}" x2="${L + plotW + 32}" y2="${ly - 4}" stroke="${color}" stroke-width="3"${dash}/>`);
      out.push(`<text x="${L + plotW + 38}" y="${ly}">${esc(s.name)}</text>`);
      out.push(`<text x="${L + plotW + 38}" y="${ly + 14}" fill="#444">${+p[0][1].toFixed(1)} at ${p[0][0]} → ${+last.toFixed(1)} at ${lx}</text>`);
    });
  });
}
