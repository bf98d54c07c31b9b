"""Open a static report as a person would: Debian's Chromium, headless, driven through
ChromeDriver (selenium), from the file system. .ci/run installs both and sets
REPORT_BROWSER_REQUIRED=1, so there a missing browser fails instead of skipping."""
from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator
from urllib.parse import unquote, urlparse

import pytest

CHROMIUM_ARGS = ('--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
                 '--disable-component-update', '--disable-sync', '--no-first-run',
                 '--window-size=1400,1000')


@contextmanager
def headless_chromium(profile_dir: Path) -> Iterator:
    """A selenium driver of the system's Chromium with a fresh profile."""
    chromium, driver_path = shutil.which('chromium'), shutil.which('chromedriver')
    if not chromium or not driver_path:
        message = 'needs Debian\'s chromium and chromium-driver (apt-get install -y chromium ' \
                  'chromium-driver)'
        if os.environ.get('REPORT_BROWSER_REQUIRED') == '1':
            pytest.fail(message)
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in (*CHROMIUM_ARGS, f'--user-data-dir={profile_dir}'):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@dataclass
class LoadedPage:
    """What the browser saw of a page once everything on it had loaded."""
    title: str
    tables: list[str]  # innerText of each table
    images: list[dict]  # src, complete, naturalWidth
    links: list[str]  # absolute hrefs
    resources: list[str]  # every URL the page fetched
    ids: set[str]


def open_page(driver, page: Path, screenshot: Path) -> LoadedPage:
    """Load ``page`` from the file system, scroll through it (lazy images load when
    seen), wait until every image has settled, and save a full-page screenshot."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(page.absolute().as_uri())
    wait = WebDriverWait(driver, 60)
    wait.until(lambda d: d.execute_script('return document.readyState') == 'complete')
    height = driver.execute_script('return document.documentElement.scrollHeight')
    for y in range(0, height + 1000, 700):
        driver.execute_script('window.scrollTo(0, arguments[0])', y)
    wait.until(lambda d: d.execute_script(
        'return Array.from(document.images).every(i => i.complete)'))
    seen = driver.execute_script('''return {
        title: document.title,
        tables: Array.from(document.querySelectorAll('table')).map(t => t.innerText),
        images: Array.from(document.images).map(
            i => ({src: i.currentSrc || i.src, complete: i.complete, width: i.naturalWidth})),
        links: Array.from(document.querySelectorAll('a[href]')).map(a => a.href),
        resources: performance.getEntriesByType('resource').map(e => e.name),
        ids: Array.from(document.querySelectorAll('[id]')).map(e => e.id)}''')
    width = driver.execute_script('return document.documentElement.scrollWidth')
    height = driver.execute_script('return document.documentElement.scrollHeight')
    driver.set_window_size(max(width, 1400), min(height, 16000))
    driver.save_screenshot(str(screenshot))
    return LoadedPage(seen['title'], seen['tables'], seen['images'], seen['links'],
                      seen['resources'], set(seen['ids']))


def local_path(url: str) -> Path:
    parsed = urlparse(url)
    assert parsed.scheme == 'file', url
    return Path(unquote(parsed.path))


def assert_nothing_broken(page: LoadedPage, page_path: Path) -> None:
    """Every image decoded, every link leads to a file that exists (or an anchor of the
    page), and nothing came from anywhere but the file system."""
    for img in page.images:
        assert img['complete'] and img['width'] > 0, f'broken image {img["src"]}'
    for url in page.links:
        target = local_path(url)
        fragment = urlparse(url).fragment
        if target == page_path.absolute() and fragment:
            assert fragment in page.ids, f'no element #{fragment} for {url}'
        else:
            assert target.is_file(), f'broken link {url}'
    assert all(urlparse(url).scheme == 'file' for url in page.resources), page.resources
