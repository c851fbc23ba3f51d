"""The pages in a real browser: headless Chromium against a live ``vtc-fw serve`` subprocess.

Chromium and chromedriver come from Debian (``chromium``, ``chromium-driver``); run as root,
the set-up installs them when they are missing, otherwise the test is skipped with the reason.
Screenshots go to the test's temporary directory (or ``$VTC_FW_SCREENSHOT_DIR``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_api import build_screening_database

from vtc_fw.db.config import DbConfig
from vtc_fw.db.embedded import free_port

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
DEBIAN_PACKAGES = ("chromium", "chromium-driver")


def install_chromium() -> str | None:
    """Install Chromium and its driver from Debian when missing; the reason when impossible."""
    if CHROMIUM.exists() and CHROMEDRIVER.exists():
        return None
    if shutil.which("apt-get") is None:
        return "chromium/chromedriver missing and no apt-get to install them"
    if os.geteuid() != 0:
        return "chromium/chromedriver missing; installing them needs root (apt-get)"
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", *DEBIAN_PACKAGES]
    for command in (install, ["apt-get", "update", "-q"], install):
        result = subprocess.run(
            command, capture_output=True, text=True, env=environment, timeout=1200, check=False
        )
        if command is install and result.returncode == 0:
            return None
    return f"apt-get install {' '.join(DEBIAN_PACKAGES)} failed: {result.stderr.strip()[-300:]}"


@pytest.fixture(scope="module")
def browser() -> Iterator:
    reason = install_chromium()
    if reason is not None:
        print(f"\nbrowser test skipped: {reason}", file=sys.stderr)
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1366,900",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def served(mongo_server: DbConfig, tmp_path_factory) -> Iterator[str]:
    """``vtc-fw serve`` on a database of real builder output; yields its base URL."""
    config = mongo_server.with_database(f"vtc_browser_{uuid.uuid4().hex[:10]}")
    build_screening_database(config)
    directory = tmp_path_factory.mktemp("serve")
    db_file = config.write_db_json(directory / "db.json")
    port = free_port()
    command = [str(Path(sys.executable).with_name("vtc-fw")), "serve", "--port", str(port)]
    log = (directory / "serve.log").open("w")
    server = subprocess.Popen(
        [*command, "--db-file", str(db_file)], stdout=log, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(base, server, directory / "serve.log")
        yield base
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
        client = config.client()
        client.drop_database(config.database)
        client.close()


def _wait_until_up(base: str, server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"vtc-fw serve exited: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{base}/api/health", timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"vtc-fw serve did not answer within 120 s: {log.read_text()[-2000:]}")


def _screenshot(driver, name: str, directory: Path) -> Path:
    """Save the whole page (the window grown to its height) as ``name``.png."""
    height = driver.execute_script("return document.body.scrollHeight")
    driver.set_window_size(1366, min(height + 120, 3000))
    path = directory / f"{name}.png"
    driver.save_screenshot(str(path))
    driver.set_window_size(1366, 900)
    return path


def test_filter_by_element_open_a_record_and_read_its_sams(browser, served, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.select import Select
    from selenium.webdriver.support.ui import WebDriverWait

    shots = Path(os.environ.get("VTC_FW_SCREENSHOT_DIR") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    wait = WebDriverWait(browser, 60)
    browser.get(served + "/")
    table = wait.until(expected_conditions.presence_of_element_located((By.ID, "candidates")))
    assert len(table.find_elements(By.CSS_SELECTOR, "tbody tr")) == 13
    assert browser.find_element(By.ID, "total").text == "13"

    Select(browser.find_element(By.ID, "element")).select_by_value("Co")
    browser.find_element(By.ID, "apply").click()
    wait.until(expected_conditions.url_contains("element=Co"))
    rows = browser.find_elements(By.CSS_SELECTOR, "#candidates tbody tr")
    elements = {row.find_elements(By.TAG_NAME, "td")[2].text for row in rows}
    assert elements == {"Co"} and browser.find_element(By.ID, "total").text == "6"
    _screenshot(browser, "candidates_cobalt", shots)

    browser.find_element(By.LINK_TEXT, "test:CoO-c5pct:Co").click()
    feff = wait.until(expected_conditions.presence_of_element_located((By.ID, "feff-sams")))
    with urllib.request.urlopen(f"{served}/api/xes/?record_key=test:CoO-c5pct:Co") as response:
        sams = json.load(response)["data"][0]["sams"]
    assert feff.text == f"{sams:.3f}"
    assert browser.find_element(By.ID, "predicted-sams").text.count("±") == 1
    image = browser.find_element(By.ID, "spectra")
    wait.until(lambda driver: driver.execute_script("return arguments[0].complete", image))
    assert browser.execute_script("return arguments[0].naturalWidth", image) > 500
    assert "Download the structure (CIF)" in browser.page_source
    record = _screenshot(browser, "record_coo_c5", shots)
    assert record.stat().st_size > 20_000
