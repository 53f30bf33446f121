// Site-wide notices pushed over /ws/announcements/ (sent with `manage.py announce`).

export interface Announcement {
  level: "info" | "warning";
  text: string;
}

const MAX_TEXT = 500;

/** Accepts only a well-formed announcement; anything else from the socket is ignored. */
export function parseAnnouncement(raw: string): Announcement | null {
  let data: unknown;
  try {
    data = JSON.parse(raw);
  } catch {
    return null;
  }
  if (typeof data !== "object" || data === null) return null;
  const { type, level, text } = data as Record<string, unknown>;
  if (type !== "announcement" || typeof text !== "string" || text.trim() === "") return null;
  if (level !== "info" && level !== "warning") return null;
  return { level, text: text.slice(0, MAX_TEXT) };
}

/** Reconnect delay: doubles per failed attempt, capped, so a restarting server is not hammered. */
export function reconnectDelayMs(attempt: number): number {
  return Math.min(30_000, 1_000 * 2 ** Math.max(0, Math.min(attempt, 5)));
}

function render(container: HTMLElement, notice: Announcement): void {
  const banner = document.createElement("div");
  banner.className = `announcement announcement-${notice.level}`;
  banner.textContent = notice.text; // text, never HTML
  const close = document.createElement("button");
  close.type = "button";
  close.textContent = "×";
  close.setAttribute("aria-label", "Dismiss");
  close.addEventListener("click", () => banner.remove());
  banner.append(close);
  container.append(banner);
}

export function listenForAnnouncements(container: HTMLElement): void {
  const scheme = window.location.protocol === "https:" ? "wss" : "ws";
  const url = `${scheme}://${window.location.host}/ws/announcements/`;
  let attempt = 0;
  const connect = (): void => {
    const socket = new WebSocket(url);
    socket.addEventListener("open", () => {
      attempt = 0;
    });
    socket.addEventListener("message", (event: MessageEvent<string>) => {
      const notice = parseAnnouncement(event.data);
      if (notice) render(container, notice);
    });
    socket.addEventListener("close", () => {
      window.setTimeout(connect, reconnectDelayMs(attempt++));
    });
  };
  connect();
}
