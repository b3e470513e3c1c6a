// Small helpers shared by the demo's modules: DOM creation, toasts, error text.

/** `el("div", { class: "x", dataset: { a: 1 } }, child, "text")` — a terse createElement. */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value == null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  node.append(...children.filter((c) => c != null));
  return node;
}

/** An `<svg><use href="#id"/></svg>` for the icon sprite in index.html. */
export function icon(id) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("aria-hidden", "true");
  const use = document.createElementNS(ns, "use");
  use.setAttribute("href", `#${id}`);
  svg.append(use);
  return svg;
}

/** "Camera denied (media-failed)": the SDK's message with its stable code, for people and bug reports. */
export function describeError(err) {
  const message = err?.message || String(err);
  return err?.code ? `${message} (${err.code})` : message;
}

const toasts = () => document.getElementById("toasts");

/** Shows a transient notice; errors stay longer because they usually need reading. */
export function toast(text, { kind = "info", code, timeout } = {}) {
  const body = el("div", { class: "body" }, text);
  if (code) body.append(" ", el("code", { text: `(${code})` }));
  const node = el("div", { class: `toast ${kind}`, role: kind === "error" ? "alert" : "status" }, body,
    el("button", { type: "button", "aria-label": "Dismiss", onclick: () => node.remove() }, icon("i-close")));
  toasts().append(node);
  setTimeout(() => node.remove(), timeout ?? (kind === "error" ? 9000 : 5000));
  return node;
}

/** Toasts a thrown SDK error (message + code). */
export function toastError(prefix, err) {
  console.warn(prefix, err);
  toast(`${prefix}: ${err?.message || err}`, { kind: "error", code: err?.code });
}

/** A stable pleasant colour per peer, so avatars are told apart at a glance. */
export function colourFor(id) {
  let h = 0;
  for (const ch of String(id)) h = (h * 31 + ch.charCodeAt(0)) >>> 0;
  return `hsl(${h % 360} 55% 45%)`;
}

export function initials(name) {
  const parts = String(name || "?").trim().split(/\s+/).filter(Boolean);
  return ((parts[0]?.[0] ?? "?") + (parts.length > 1 ? parts.at(-1)[0] : "")).toUpperCase();
}

export function formatBytes(n) {
  if (!Number.isFinite(n)) return "–";
  const units = ["B", "KiB", "MiB", "GiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i === 0 || n >= 100 ? 0 : 1)} ${units[i]}`;
}

export function formatBitrate(bps) {
  if (!Number.isFinite(bps)) return "–";
  return bps >= 1e6 ? `${(bps / 1e6).toFixed(1)} Mb/s` : `${Math.round(bps / 1e3)} kb/s`;
}

/** Copies text; falls back to a hidden textarea where the async clipboard is unavailable (plain http). */
export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    const area = el("textarea", { class: "sr-only" });
    area.value = text;
    document.body.append(area);
    area.select();
    const ok = document.execCommand("copy");
    area.remove();
    return ok;
  }
}
