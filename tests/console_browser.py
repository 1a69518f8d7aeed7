"""A real headless Chromium (Debian's chromium + chromium-driver) driven by selenium.

One browser per test module (starting Chromium costs seconds). The flags keep it from
reaching any network service of its own (updates, sync, safe browsing): the test
session talks only to the collector on loopback.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from conftest import missing_component

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
DESKTOP = (1366, 768)
PHONE = (390, 844)

# Accessibility basics, run in the page: one h1, no skipped heading level, html lang,
# every form control labelled, text contrast >= 4.5:1 (WCAG AA) against the background.
A11Y_JS = r"""
const problems = [];
if (!document.documentElement.lang) problems.push('html has no lang');
const h1 = document.querySelectorAll('h1');
if (h1.length !== 1) problems.push('h1 count ' + h1.length);
let last = 0;
document.querySelectorAll('h1,h2,h3,h4,h5,h6').forEach(h => {
  const level = +h.tagName[1];
  if (last && level > last + 1) problems.push('heading level skipped at ' + h.textContent.trim());
  last = level;
});
document.querySelectorAll('input:not([type=hidden]),select,textarea').forEach(el => {
  const label = el.id && document.querySelector('label[for="' + el.id + '"]');
  if (!label && !el.getAttribute('aria-label') && !el.closest('label'))
    problems.push('unlabelled control ' + (el.name || el.outerHTML.slice(0, 60)));
});
function parse(c) {
  const m = c.match(/rgba?\(([^)]+)\)/); if (!m) return null;
  const p = m[1].split(',').map(Number);
  return {r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1};
}
function lum(c) {
  const f = v => { v /= 255;
    return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
  return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b);
}
function background(el) {
  while (el) { const c = parse(getComputedStyle(el).backgroundColor);
    if (c && c.a > 0.5) return c; el = el.parentElement; }
  return {r: 255, g: 255, b: 255, a: 1};
}
const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
const seen = new Set();
while (walker.nextNode()) {
  const node = walker.currentNode;
  if (!node.textContent.trim()) continue;
  const el = node.parentElement;
  if (seen.has(el)) continue; seen.add(el);
  if (el.closest('.sr-only, svg, .skip, option')) continue;
  const st = getComputedStyle(el);
  if (st.visibility === 'hidden' || st.display === 'none') continue;
  const fg = parse(st.color), bg = background(el);
  const a = lum(fg), b = lum(bg);
  const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
  if (ratio < 4.5)
    problems.push('contrast ' + ratio.toFixed(2) + ' for ' + node.textContent.trim().slice(0, 40));
}
return problems;
"""


def click_and_wait(driver: Any, element: Any, timeout: float = 20) -> None:
    """Click a button or link and wait until the answer page replaced this one.

    The old document is marked before the click and the wait ends when the page in the
    window no longer carries the mark. selenium's staleness_of asks about the clicked
    element instead, and chromedriver sometimes answers that question during the
    navigation with "unknown error: Node with given id does not belong to the document"
    rather than "stale element", which failed a CI run; any error while the new page
    loads is retried until the timeout.
    """
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait

    driver.execute_script("document.kiemkeOldPage = true;")
    element.click()

    def replaced(d: Any) -> bool:
        return bool(d.execute_script(
            "return document.readyState !== 'loading' && document.kiemkeOldPage !== true;"))

    WebDriverWait(driver, timeout, ignored_exceptions=(WebDriverException,)).until(replaced)


def browser() -> Iterator[Any]:
    """A selenium driver for the system Chromium; quits and removes its profile after."""
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        missing_component(f"headless Chromium needs {CHROMIUM} and {CHROMEDRIVER} "
                          f"(apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="kiemke-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-default-apps",
                 "--disable-extensions", "--metrics-recording-only",
                 "--disable-features=Translate,OptimizationHints,MediaRouter",
                 f"--window-size={DESKTOP[0]},{DESKTOP[1]}", f"--user-data-dir={profile}",
                 "--lang=vi"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
