// Buttons with data-copy="<selector>" copy that input's value and say so.

export function setUpCopyButtons(root: ParentNode = document): void {
  for (const button of root.querySelectorAll<HTMLButtonElement>("[data-copy]")) {
    button.addEventListener("click", () => {
      const target = document.querySelector<HTMLInputElement | HTMLTextAreaElement>(button.dataset["copy"] ?? "");
      if (!target) return;
      target.select();
      const done = (): void => {
        const label = button.textContent;
        button.textContent = "Copied";
        setTimeout(() => (button.textContent = label), 1500);
      };
      if (navigator.clipboard) void navigator.clipboard.writeText(target.value).then(done, () => document.execCommand("copy") && done());
      else if (document.execCommand("copy")) done();
    });
  }
}
