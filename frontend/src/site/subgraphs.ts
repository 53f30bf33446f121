// Saved subgraphs on the explorer page: list the graph's subgraphs, save the current view (the
// explorer's store, once ../explorer/ready.ts says it is there) as new or over the one loaded,
// show a 409 as "someone saved a newer version", delete, and a share dialog (visibility, link,
// embed code).

import type { SavedSubgraph as Saved } from "../api/types";
import { isVisibility, reachWarning, setUpGraphVisibility, type GraphVisibility } from "../explorer/graphVisibility";
import { explorerReady } from "../explorer/ready";
import { toSubgraphFields } from "../explorer/savedSubgraph";
import { asApiError, el, sendJson } from "./dom";
import { embedCode, shareLink } from "./share";

const VISIBILITY: Record<string, string> = { private: "Private", unlisted: "Unlisted", public: "Public" };

/**
 * The warning under a dialog's visibility select: shown while the chosen visibility would hand
 * out a link the graph's own visibility blocks, with a button (for the graph's owner) that
 * makes the graph unlisted.
 */
function reachCheck(dialog: HTMLDialogElement, select: HTMLSelectElement, graph: GraphVisibility): () => void {
  const box = dialog.querySelector<HTMLElement>(".dialog-warning")!;
  const text = box.querySelector("p")!;
  const fix = box.querySelector<HTMLButtonElement>("[data-graph-visibility]")!;
  const update = (): void => {
    const chosen = select.value;
    const warning = isVisibility(chosen) ? reachWarning(graph.value, chosen, graph.canEdit) : null;
    box.hidden = warning === null;
    text.textContent = warning ?? "";
    fix.hidden = !graph.canEdit;
  };
  fix.addEventListener("click", async () => {
    fix.disabled = true;
    const error = await graph.change("unlisted");
    fix.disabled = false;
    if (error) text.textContent = error;
  });
  select.addEventListener("change", update);
  graph.subscribe(update);
  return update;
}

export function setUpSavedSubgraphs(panel: HTMLElement, graph: GraphVisibility): void {
  const listUrl = panel.dataset["listUrl"]!;
  const detailUrl = (slug: string): string => `${panel.dataset["detailUrl"]}${encodeURIComponent(slug)}`;
  const me = panel.dataset["username"] ?? "";
  const list = panel.querySelector<HTMLUListElement>(".subgraph-list")!;
  const saveButton = panel.querySelector<HTMLButtonElement>("#save-subgraph");
  const saveDialog = document.getElementById("save-dialog") as HTMLDialogElement;
  const saveForm = saveDialog.querySelector("form")!;
  const saveStatus = saveDialog.querySelector<HTMLElement>(".dialog-status")!;
  const overwrite = saveDialog.querySelector<HTMLButtonElement>("[value=overwrite]")!;
  const shareDialog = document.getElementById("share-dialog") as HTMLDialogElement;
  const panelStatus = panel.querySelector<HTMLElement>(".saved-status");
  const checkSave = reachCheck(saveDialog, saveForm.elements.namedItem("visibility") as HTMLSelectElement, graph);
  const shareForm = shareDialog.querySelector("form")!;
  const checkShare = reachCheck(shareDialog, shareForm.elements.namedItem("visibility") as HTMLSelectElement, graph);
  let current: Saved | null = null;
  let items: Saved[] = [];

  const input = (form: HTMLFormElement, name: string): HTMLInputElement | HTMLTextAreaElement | HTMLSelectElement =>
    form.elements.namedItem(name) as HTMLInputElement;

  const render = (): void => {
    list.replaceChildren(
      ...items.map((s) => {
        const li = el("li", s.share_slug === current?.share_slug ? "current" : "");
        const load = el("a", "subgraph-title", s.title);
        load.href = shareLink(location.href, s.share_slug, false);
        const meta = el("span", "meta", ` ${s.owner} · ${VISIBILITY[s.visibility] ?? s.visibility} · v${s.version}`);
        li.append(load, meta);
        const share = el("button", "button small", "Share");
        share.type = "button";
        share.addEventListener("click", () => openShare(s));
        li.append(share);
        if (s.owner === me) {
          const del = el("button", "button small danger", "Delete");
          del.type = "button";
          del.addEventListener("click", () => void remove(s));
          li.append(del);
        }
        return li;
      }),
    );
    if (!items.length) list.append(el("li", "empty", "No saved subgraphs yet."));
  };

  const refresh = async (): Promise<void> => {
    const reply = await sendJson(listUrl, "GET", undefined);
    if (reply.status !== 200) return;
    const body = reply.body as { results?: Saved[] } | Saved[];
    items = Array.isArray(body) ? body : (body.results ?? []);
    render();
  };

  const remove = async (s: Saved): Promise<void> => {
    if (!confirm(`Delete the subgraph “${s.title}”? This cannot be undone.`)) return;
    const reply = await sendJson(detailUrl(s.share_slug), "DELETE", undefined);
    if (reply.status === 204 && current?.share_slug === s.share_slug) current = null;
    if (panelStatus) {
      panelStatus.textContent = reply.status === 204 ? `Deleted “${s.title}”.` : `Not deleted: ${asApiError(reply.body, reply.status).error}`;
      panelStatus.classList.toggle("bad", reply.status !== 204);
    }
    await refresh();
  };

  const openSave = (): void => {
    saveStatus.textContent = "";
    saveStatus.classList.remove("bad");
    for (const b of saveDialog.querySelectorAll<HTMLElement>(".conflict-actions")) b.hidden = true;
    const mine = current !== null && current.owner === me;
    overwrite.hidden = !mine;
    if (mine && current) {
      overwrite.textContent = `Save over “${current.title}”`;
      input(saveForm, "title").value = current.title;
      input(saveForm, "notes").value = current.notes;
      input(saveForm, "visibility").value = current.visibility;
    }
    checkSave();
    saveDialog.showModal();
  };

  const save = async (mode: "new" | "overwrite"): Promise<void> => {
    const { store } = await explorerReady;
    const fields = {
      ...toSubgraphFields(store.get()),
      title: input(saveForm, "title").value,
      notes: input(saveForm, "notes").value,
      visibility: input(saveForm, "visibility").value,
    };
    saveStatus.classList.remove("bad");
    saveStatus.textContent = "Saving…";
    const reply =
      mode === "overwrite" && current
        ? await sendJson(detailUrl(current.share_slug), "PUT", fields, { "If-Match": `"${current.version}"` })
        : await sendJson(listUrl, "POST", fields);
    if (reply.status === 200 || reply.status === 201) {
      current = reply.body as Saved;
      saveStatus.textContent = "Saved.";
      const url = new URL(location.href);
      url.searchParams.set("subgraph", current.share_slug);
      history.replaceState(null, "", url);
      await refresh();
      saveDialog.close();
      openShare(current);
      return;
    }
    saveStatus.classList.add("bad");
    if (reply.status === 409) {
      saveStatus.textContent = "Someone saved a newer version: reload it, or save yours as a new subgraph.";
      for (const b of saveDialog.querySelectorAll<HTMLElement>(".conflict-actions")) b.hidden = false;
      overwrite.hidden = true; // saving over again would meet the same newer version
      return;
    }
    const error = asApiError(reply.body, reply.status);
    saveStatus.textContent = [error.error, ...Object.entries(error.detail).map(([k, v]) => `${k}: ${v}`)].join(" · ");
  };

  const openShare = (s: Saved): void => {
    const form = shareForm;
    const link = shareLink(location.href, s.share_slug, false);
    (shareDialog.querySelector(".share-title") as HTMLElement).textContent = s.title;
    input(form, "link").value = link;
    input(form, "embed").value = embedCode(shareLink(location.href, s.share_slug, true), s.title);
    const visibility = input(form, "visibility") as HTMLSelectElement;
    visibility.value = s.visibility;
    visibility.disabled = s.owner !== me;
    const status = shareDialog.querySelector<HTMLElement>(".dialog-status")!;
    status.textContent = s.visibility === "private" ? "Private: only you can open this link. Make it unlisted to share it." : "";
    visibility.onchange = async (): Promise<void> => {
      const reply = await sendJson(detailUrl(s.share_slug), "PATCH", { visibility: visibility.value }, { "If-Match": `"${s.version}"` });
      if (reply.status === 200) {
        Object.assign(s, reply.body as Saved);
        if (current?.share_slug === s.share_slug) current = s;
        status.textContent = `The subgraph is now ${VISIBILITY[s.visibility]?.toLowerCase() ?? s.visibility}.`;
        await refresh();
      } else {
        status.textContent = reply.status === 409 ? "Someone saved a newer version: reload the page first." : asApiError(reply.body, reply.status).error;
        visibility.value = s.visibility;
      }
      checkShare();
    };
    checkShare();
    shareDialog.showModal();
  };

  saveButton?.addEventListener("click", openSave);
  saveForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const submitter = (event as SubmitEvent).submitter as HTMLButtonElement | null;
    const action = submitter?.value ?? "new";
    if (action === "cancel") saveDialog.close();
    else if (action === "reload" && current) location.assign(shareLink(location.href, current.share_slug, false));
    else void save(action === "overwrite" ? "overwrite" : "new");
  });
  shareDialog.querySelector("[data-close]")?.addEventListener("click", () => shareDialog.close());

  // The subgraph opened with ?subgraph=<slug> is the one "Save over" writes to; the explorer
  // fetched it already.
  void explorerReady.then(({ subgraph }) => {
    current = subgraph;
    render();
  });
  void refresh();
}

const panel = document.getElementById("saved-subgraphs");
const bar = document.getElementById("graph-bar");
if (panel && bar) setUpSavedSubgraphs(panel, setUpGraphVisibility(bar));
