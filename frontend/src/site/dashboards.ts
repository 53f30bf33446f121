// The transcoder set page: post the dashboards form to the API (an upload with its progress),
// show its errors by field, then follow the job (./followJob.ts) with the layers imported so far,
// and reload the page's layer table once it is done. A job already under way when the page
// loads is followed the same way.

import type { components } from "../api/schema";
import { dashboardsRequest, describeDashboards, FIELDS, importedLayers } from "./dashboardsLogic";
import { asApiError, clearErrors, csrfToken, sendJson, showErrors } from "./dom";
import { followJob, isFinal, jobTick, type JobView } from "./followJob";

type Job = components["schemas"]["Job"];
const POLL_MS = 2000;

function follow(job: JobView, form: HTMLFormElement): void {
  const section = document.getElementById("dashboards-progress")!;
  const bar = document.getElementById("dashboards-bar") as HTMLProgressElement;
  const status = document.getElementById("dashboards-status")!;
  const cancel = document.getElementById("dashboards-cancel") as HTMLButtonElement;
  const submit = document.getElementById("dashboards-submit") as HTMLButtonElement;
  let view = job;
  let layers: number[] = [];
  let seenPhase = "";
  const show = (): void => {
    bar.value = view.percent ?? 0;
    status.textContent = describeDashboards(view, layers);
    status.classList.toggle("bad", view.status === "failed");
    cancel.hidden = isFinal(view);
    submit.disabled = !isFinal(view);
  };
  // The row says which layers are in: read it when a layer may have been imported.
  const refresh = (): void => {
    void sendJson(job.url, "GET", undefined).then((reply) => {
      if (reply.status !== 200) return;
      layers = importedLayers((reply.body as Job).result);
      show();
      if (view.status === "succeeded") location.reload();
    });
  };
  const render = (next: JobView): void => {
    view = next;
    show();
    if (view.phase === "outputs" || isFinal(view) || view.phase !== seenPhase) refresh();
    seenPhase = view.phase ?? "";
  };
  section.hidden = false;
  form.hidden = true;
  render(job);
  const following = followJob(job, render, { pollMs: POLL_MS });
  cancel.addEventListener("click", () => {
    cancel.disabled = true;
    void sendJson(`${job.url}/cancel`, "POST", {}).then((reply) => {
      cancel.disabled = false;
      if (reply.status === 200) {
        following.stop();
        render(jobTick(view, { type: "cancelled", job: view.id }));
      }
    });
  });
  void following.finished.then(() => (form.hidden = false));
}

function setUp(form: HTMLFormElement): void {
  const top = document.getElementById("dashboards-errors") as HTMLUListElement;
  const submit = document.getElementById("dashboards-submit") as HTMLButtonElement;
  const status = document.getElementById("dashboards-status")!;
  const bar = document.getElementById("dashboards-bar") as HTMLProgressElement;
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    clearErrors(form);
    const { body, error } = dashboardsRequest(new FormData(form));
    if (error) {
      showErrors(form, top, error, FIELDS);
      return;
    }
    const xhr = new XMLHttpRequest();
    xhr.open("POST", form.dataset["apiUrl"] ?? "");
    xhr.setRequestHeader("X-CSRFToken", csrfToken(form));
    xhr.setRequestHeader("Accept", "application/json");
    xhr.responseType = "json";
    submit.disabled = true;
    document.getElementById("dashboards-progress")!.hidden = false;
    status.textContent = "Sending the corpus…";
    xhr.upload.addEventListener("progress", (e) => {
      if (e.lengthComputable) bar.value = Math.round((100 * e.loaded) / e.total);
      if (e.loaded === e.total) status.textContent = "Checking the corpus…";
    });
    xhr.addEventListener("load", () => {
      if (xhr.status === 202) {
        top.hidden = true;
        follow(xhr.response as JobView, form);
        return;
      }
      submit.disabled = false;
      bar.value = 0;
      status.textContent = "";
      document.getElementById("dashboards-progress")!.hidden = true;
      showErrors(form, top, asApiError(xhr.response, xhr.status), FIELDS, "corpus_file");
    });
    xhr.addEventListener("error", () => {
      submit.disabled = false;
      status.textContent = "The request failed: check your connection and try again.";
    });
    xhr.send(body);
  });
  const active = document.getElementById("dashboards-active");
  if (active?.textContent) follow(JSON.parse(active.textContent) as JobView, form);
}

const form = document.getElementById("dashboards-form");
if (form instanceof HTMLFormElement) setUp(form);
