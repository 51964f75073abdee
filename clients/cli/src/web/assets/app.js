// cairn web: small additions to pages that work without them.
"use strict";

(function () {
  // New events (from a sync, another tab or the CLI): reload when nothing is being typed,
  // otherwise say so and let the person choose.
  const version = document.body.dataset.version;
  const news = document.getElementById("news");
  const typing = () =>
    Array.from(document.querySelectorAll("input[type=text], textarea:not([readonly])")).some(
      (el) => el.value.trim() !== "" || el === document.activeElement,
    );
  let timer = null;
  async function poll() {
    try {
      const res = await fetch("/version", { cache: "no-store", credentials: "same-origin" });
      if (res.ok) {
        const now = (await res.text()).trim();
        if (version && now !== version) {
          if (typing()) {
            if (news) news.hidden = false;
          } else {
            location.reload();
            return;
          }
        }
      }
    } catch (_) {
      // The app stopped or the network blinked: try again later.
    }
    timer = setTimeout(poll, 2000);
  }
  if (version) timer = setTimeout(poll, 2000);

  // Ask before a retraction.
  document.querySelectorAll("button[data-confirm]").forEach((b) => {
    b.addEventListener("click", (ev) => {
      if (!confirm(b.dataset.confirm)) ev.preventDefault();
    });
  });

  // Filters apply as soon as they change.
  document.querySelectorAll("form.filters select").forEach((s) => {
    s.addEventListener("change", () => s.form.submit());
  });

  // Copy the digest.
  document.querySelectorAll("button[data-copy]").forEach((b) => {
    const target = document.getElementById(b.dataset.copy);
    if (!target || !navigator.clipboard) return;
    b.hidden = false;
    b.addEventListener("click", async () => {
      await navigator.clipboard.writeText(target.value);
      b.textContent = "Copied";
    });
  });
})();
