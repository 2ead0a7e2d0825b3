import type { ScenarioResult, SystemName } from "./results.js";
import { formatCount } from "./report.js";

/**
 * `results/fanout.svg`: end-to-end deliveries per server CPU-second against group size (log
 * scale), one line per system; solid for one message per round, dashed for bursts. Plain SVG
 * written by hand: no charting dependency.
 */

const PANEL_WIDTH = 380;
const HEIGHT = 430;
const MARGIN = { left: 78, right: 24, top: 92, bottom: 56 } as const;
const COLORS: Readonly<Record<SystemName, string>> = { switchboard: "#2563eb", "socket.io": "#dc2626", "raw-ws": "#6b7280" };
const LABELS: Readonly<Record<SystemName, string>> = { switchboard: "Switchboard", "socket.io": "Socket.IO 4.8", "raw-ws": "raw ws floor" };
const ORDER: readonly SystemName[] = ["switchboard", "socket.io", "raw-ws"];

interface Series {
  readonly system: SystemName;
  readonly burst: number;
  readonly points: readonly { readonly x: number; readonly y: number }[];
}

function escapeXml(text: string): string {
  return text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;");
}

/** Round tick values from 0 to at least `max`. */
function linearTicks(max: number): number[] {
  if (!(max > 0)) return [0, 1];
  const raw = max / 5;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw)!;
  const ticks: number[] = [];
  for (let value = 0; value <= max + step * 0.999 && ticks.length < 12; value += step) ticks.push(value);
  return ticks;
}

/** "150 k", "1.5 M": a count without trailing zeros. */
function tickLabel(value: number): string {
  return value === 0 ? "0" : formatCount(value).replace(/(\.\d*?)0+ /, "$1 ").replace(/\. /, " ");
}

/** The JSON end-to-end scenarios as one series per system and burst size. */
export function fanoutSeries(scenarios: readonly ScenarioResult[]): Series[] {
  const series = new Map<string, { system: SystemName; burst: number; points: { x: number; y: number }[] }>();
  for (const s of scenarios) {
    if (!s.name.startsWith("e2e fan-out") || s.protocol === "messagepack" || s.protocol === "json+stateful" || s.deliveriesPerCpuSecond === undefined) continue;
    const key = `${s.system}/${s.burst}`;
    let entry = series.get(key);
    if (entry === undefined) series.set(key, (entry = { system: s.system, burst: s.burst ?? 1, points: [] }));
    entry.points.push({ x: s.members!, y: s.deliveriesPerCpuSecond });
  }
  for (const entry of series.values()) entry.points.sort((a, b) => a.x - b.x);
  return [...series.values()].sort((a, b) => a.burst - b.burst || ORDER.indexOf(a.system) - ORDER.indexOf(b.system));
}

/** One panel (one burst size): its own linear y axis, group size on a log x axis. */
function panel(out: string[], series: readonly Series[], offsetX: number, title: string): void {
  const xs = series.flatMap((s) => s.points.map((p) => p.x));
  const ys = series.flatMap((s) => s.points.map((p) => p.y));
  let xMin = xs.length > 0 ? Math.min(...xs) : 1;
  let xMax = xs.length > 0 ? Math.max(...xs) : 10;
  if (xMin === xMax) [xMin, xMax] = [xMin / 2, xMax * 2];
  const [logMin, logMax] = [Math.log10(xMin) - 0.15, Math.log10(xMax) + 0.15];
  const yTicks = linearTicks(ys.length > 0 ? Math.max(...ys) : 1);
  const yMax = yTicks[yTicks.length - 1]!;
  const left = offsetX + MARGIN.left;
  const plotW = PANEL_WIDTH - MARGIN.left - MARGIN.right;
  const plotH = HEIGHT - MARGIN.top - MARGIN.bottom;
  const px = (x: number): number => left + ((Math.log10(x) - logMin) / (logMax - logMin)) * plotW;
  const py = (y: number): number => MARGIN.top + plotH - (y / yMax) * plotH;
  out.push(`<text x="${left}" y="${MARGIN.top - 12}" font-weight="600" fill="#333">${escapeXml(title)}</text>`);
  for (const tick of yTicks) {
    const y = py(tick).toFixed(1);
    out.push(`<line x1="${left}" y1="${y}" x2="${left + plotW}" y2="${y}" stroke="#e5e7eb"/>`);
    out.push(`<text x="${left - 8}" y="${y}" text-anchor="end" dominant-baseline="middle" fill="#333">${escapeXml(tickLabel(tick))}</text>`);
  }
  for (const x of [...new Set(xs)].sort((a, b) => a - b)) {
    const sx = px(x).toFixed(1);
    out.push(`<line x1="${sx}" y1="${MARGIN.top}" x2="${sx}" y2="${MARGIN.top + plotH}" stroke="#f1f5f9"/>`);
    out.push(`<text x="${sx}" y="${MARGIN.top + plotH + 18}" text-anchor="middle" fill="#333">${x.toLocaleString("en-US")}</text>`);
  }
  out.push(`<line x1="${left}" y1="${MARGIN.top + plotH}" x2="${left + plotW}" y2="${MARGIN.top + plotH}" stroke="#333"/>`);
  out.push(`<line x1="${left}" y1="${MARGIN.top}" x2="${left}" y2="${MARGIN.top + plotH}" stroke="#333"/>`);
  out.push(`<text x="${left + plotW / 2}" y="${HEIGHT - 16}" text-anchor="middle" fill="#333">group size (members, log scale)</text>`);
  for (const s of series) {
    const color = COLORS[s.system];
    const points = s.points.map((p) => `${px(p.x).toFixed(1)},${py(p.y).toFixed(1)}`).join(" ");
    out.push(`<polyline points="${points}" fill="none" stroke="${color}" stroke-width="2.5"/>`);
    for (const p of s.points) {
      out.push(`<circle cx="${px(p.x).toFixed(1)}" cy="${py(p.y).toFixed(1)}" r="3.5" fill="${color}"><title>${escapeXml(`${LABELS[s.system]}, ${p.x} members: ${formatCount(p.y)} deliveries per CPU-second`)}</title></circle>`);
    }
  }
}

/**
 * The chart: one panel per burst size (one message per round; bursts), each with one line per
 * system, so the single-message lines are not flattened by the much higher burst figures.
 */
export function fanoutSvg(scenarios: readonly ScenarioResult[], subtitle: string): string {
  const series = fanoutSeries(scenarios);
  const bursts = [...new Set(series.map((s) => s.burst))].sort((a, b) => a - b);
  const width = Math.max(1, bursts.length) * PANEL_WIDTH;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${HEIGHT}" viewBox="0 0 ${width} ${HEIGHT}" font-family="system-ui, -apple-system, Segoe UI, sans-serif" font-size="12">`);
  out.push(`<rect width="${width}" height="${HEIGHT}" fill="#ffffff"/>`);
  out.push(`<text x="16" y="24" font-size="15" font-weight="600">Group fan-out: deliveries per server CPU-second (higher is better)</text>`);
  out.push(`<text x="16" y="42" fill="#555">${escapeXml(subtitle)}</text>`);
  ORDER.forEach((system, index) => {
    const x = 16 + index * 150;
    out.push(`<line x1="${x}" y1="60" x2="${x + 24}" y2="60" stroke="${COLORS[system]}" stroke-width="2.5"/>`);
    out.push(`<text x="${x + 30}" y="60" dominant-baseline="middle" fill="#333">${escapeXml(LABELS[system])}</text>`);
  });
  bursts.forEach((burst, index) => {
    panel(out, series.filter((s) => s.burst === burst), index * PANEL_WIDTH, burst === 1 ? "One message per round" : `Bursts of ${burst} messages per turn`);
  });
  out.push("</svg>");
  return `${out.join("\n")}\n`;
}
