// The upload page: post the file to the API with a progress bar, show the validator's errors
// by field (paths inside the file go under "Graph file"), open the new graph on success.

import type { ServerGraph } from "../api/types";
import { asApiError, clearErrors, csrfToken, showErrors } from "./dom";

const FIELDS = ["file", "model", "title", "slug", "visibility"] as const;

function setUp(form: HTMLFormElement): void {
  const bar = document.getElementById("upload-progress") as HTMLProgressElement;
  const status = document.getElementById("upload-status") as HTMLElement;
  const top = document.getElementById("upload-errors") as HTMLUListElement;
  const button = form.querySelector<HTMLButtonElement>("button[type=submit]")!;
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    clearErrors(form);
    const data = new FormData(form);
    data.delete("csrfmiddlewaretoken");
    for (const name of ["model", "slug", "title"]) if (!data.get(name)) data.delete(name);
    const file = data.get("file");
    if (!(file instanceof File) || file.size === 0) {
      showErrors(form, top, { error: "Choose a graph file to upload.", detail: { file: "no file chosen" } }, FIELDS);
      return;
    }
    const xhr = new XMLHttpRequest();
    xhr.open("POST", form.dataset["apiUrl"] ?? "/api/v1/graphs");
    xhr.setRequestHeader("X-CSRFToken", csrfToken(form));
    xhr.setRequestHeader("Accept", "application/json");
    xhr.responseType = "json";
    bar.hidden = false;
    bar.value = 0;
    button.disabled = true;
    status.textContent = "Uploading…";
    xhr.upload.addEventListener("progress", (e) => {
      if (e.lengthComputable) bar.value = Math.round((100 * e.loaded) / e.total);
      if (e.loaded === e.total) status.textContent = "Checking and indexing the graph…";
    });
    xhr.addEventListener("load", () => {
      button.disabled = false;
      if (xhr.status === 201) {
        const body = xhr.response as ServerGraph | null;
        status.textContent = "Uploaded. Opening the graph…";
        bar.value = 100;
        const page = body?.urls["page"];
        if (page) location.assign(page);
        return;
      }
      bar.hidden = true;
      status.textContent = "";
      const error = asApiError(xhr.response, xhr.status);
      if (xhr.status === 429) error.error = `Too many uploads: try again in ${xhr.getResponseHeader("Retry-After") ?? "a minute"} s.`;
      // Errors about the file's content ("nodes[3].layer", "metadata.scan") go under the file.
      showErrors(form, top, error, FIELDS, "file");
    });
    xhr.addEventListener("error", () => {
      button.disabled = false;
      bar.hidden = true;
      status.textContent = "The upload failed: check your connection and try again.";
    });
    xhr.send(data);
  });
}

const form = document.getElementById("upload-form");
if (form instanceof HTMLFormElement) setUp(form);
