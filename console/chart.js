// A line chart of a campaign's progress over time, as SVG, with no library: one line per
// series, the y axis from 0 to the largest value, the x axis from the first sample to the
// last. The chart is an image to screen readers, labelled with the latest values; the
// numbers themselves are in the progress table beside it.

const SVG = 'http://www.w3.org/2000/svg';
const WIDTH = 720;
const HEIGHT = 240;
const PAD = { left: 48, right: 16, top: 12, bottom: 28 };

export const SERIES = [
  { key: 'sent', label: 'sent', color: '#1e7a3d' },
  { key: 'skipped', label: 'skipped', color: '#b07d00' },
  { key: 'held', label: 'held', color: '#1f5fbf' },
  { key: 'failed', label: 'failed', color: '#b3261e' },
];

function node(tag, attrs, text) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (text !== undefined) el.textContent = text;
  return el;
}

/** `samples`: `[{ t: ms, sent, skipped, held, failed }]`, oldest first. */
export function progressChart(samples) {
  const last = samples.at(-1) ?? {};
  const summary = SERIES.map((s) => `${s.label} ${last[s.key] ?? 0}`).join(', ');
  const svg = node('svg', {
    viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
    role: 'img',
    'aria-label': `Progress over time, latest: ${summary}`,
  });
  const t0 = samples[0]?.t ?? 0;
  const t1 = Math.max(samples.at(-1)?.t ?? 1, t0 + 1);
  const top = Math.max(1, ...samples.flatMap((s) => SERIES.map((series) => s[series.key] ?? 0)));
  const x = (t) => PAD.left + ((t - t0) / (t1 - t0)) * (WIDTH - PAD.left - PAD.right);
  const y = (v) => HEIGHT - PAD.bottom - (v / top) * (HEIGHT - PAD.top - PAD.bottom);
  // Axes and their ends' labels.
  svg.append(
    node('line', { x1: PAD.left, y1: y(0), x2: WIDTH - PAD.right, y2: y(0), stroke: '#9aa3b2' }),
    node('line', { x1: PAD.left, y1: PAD.top, x2: PAD.left, y2: y(0), stroke: '#9aa3b2' }),
    node('text', { x: PAD.left - 6, y: y(top) + 4, 'text-anchor': 'end', 'font-size': 11, fill: '#5b6475' }, String(top)),
    node('text', { x: PAD.left - 6, y: y(0) + 4, 'text-anchor': 'end', 'font-size': 11, fill: '#5b6475' }, '0'),
  );
  if (samples.length) {
    const time = (t) => new Date(t).toLocaleTimeString();
    svg.append(
      node('text', { x: PAD.left, y: HEIGHT - 8, 'font-size': 11, fill: '#5b6475' }, time(t0)),
      node('text', { x: WIDTH - PAD.right, y: HEIGHT - 8, 'text-anchor': 'end', 'font-size': 11, fill: '#5b6475' }, time(t1)),
    );
  }
  for (const series of SERIES) {
    const points = samples.map((s) => `${x(s.t).toFixed(1)},${y(s[series.key] ?? 0).toFixed(1)}`);
    if (points.length === 1) points.push(`${(WIDTH - PAD.right).toFixed(1)},${y(samples[0][series.key] ?? 0).toFixed(1)}`);
    svg.append(node('polyline', {
      points: points.join(' '),
      fill: 'none',
      stroke: series.color,
      'stroke-width': 2,
      'data-series': series.key,
    }));
  }
  const legend = document.createElement('ul');
  legend.className = 'legend';
  legend.setAttribute('aria-hidden', 'true');
  for (const series of SERIES) {
    const item = document.createElement('li');
    const swatch = document.createElement('i');
    swatch.style.background = series.color;
    item.append(swatch, `${series.label} ${last[series.key] ?? 0}`);
    legend.append(item);
  }
  const figure = document.createElement('figure');
  figure.className = 'chart';
  figure.style.margin = '0';
  figure.append(svg, legend);
  return figure;
}

/** The chart's values from a campaign's progress: sent summed over channels. */
export function sample(progress, t = Date.now()) {
  const sent = Object.values(progress?.sent ?? {}).reduce((a, b) => a + b, 0);
  return {
    t,
    sent,
    skipped: progress?.skipped ?? 0,
    held: progress?.held ?? 0,
    failed: progress?.failed ?? 0,
  };
}
