"""Requests per second of the screening API and load times of its pages, on a live server.

Starts ``vtc-fw serve`` on a free port over the given database, then measures

* the REST API: ``/api/predictions/`` filtered as a user would (newest model, one element,
  SAMS ≥ 0.2, in domain, sorted by SAMS, 50 per page): requests/s with 1 and with 4 clients;
* the candidates page with the same filter (``/?element=Fe&sams_min=0.2``): requests/s;
* page load times in headless Chromium (navigation start → load event, images included):
  the first candidates page after the start (it reads the candidates snapshot), then warm
  candidates, record and model pages; medians of ``--repeats`` runs (without Chromium: the
  HTML alone, over HTTP).

Usage (the database ``vtc-fw run --n 0`` leaves holds ~13,300 predictions)::

    .venv/bin/python benchmarks/api_throughput.py --db-file db.json [--element Fe]
"""

from __future__ import annotations

import argparse
import http.client
import json
import platform
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

import psutil

from vtc_fw.db.config import DbConfig
from vtc_fw.db.embedded import free_port

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


def fetch(port: int, path: str, connection: http.client.HTTPConnection | None = None) -> bytes:
    """GET ``path``; raises on a non-200 answer."""
    own = connection is None
    connection = connection or http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    connection.request("GET", path)
    response = connection.getresponse()
    body = response.read()
    if own:
        connection.close()
    if response.status != 200:
        raise RuntimeError(f"{path}: HTTP {response.status}: {body[:300]!r}")
    return body


def requests_per_second(port: int, path: str, seconds: float, clients: int) -> float:
    """Completed requests per second of ``clients`` keep-alive clients over ``seconds``."""

    def client() -> int:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        done, deadline = 0, time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            fetch(port, path, connection)
            done += 1
        connection.close()
        return done

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        total = sum(pool.map(lambda _: client(), range(clients)))
    return total / (time.perf_counter() - start)


def start_server(db_file: Path, port: int) -> subprocess.Popen:
    """``vtc-fw serve`` in the background; returns once ``/api/health`` answers."""
    command = [str(Path(sys.executable).with_name("vtc-fw")), "serve", "--port", str(port)]
    server = subprocess.Popen([*command, "--db-file", str(db_file)])
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            fetch(port, "/api/health")
            return server
        except OSError:
            time.sleep(0.5)
    server.terminate()
    raise RuntimeError("vtc-fw serve did not start within 180 s")


def browser():
    """Headless Chromium through selenium, or None when it is not installed."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        return None
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(argument)
    options.add_argument("--window-size=1366,900")
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)


def load_time(driver, port: int, path: str) -> float:
    """Seconds from navigation start to the load event (images included)."""
    if driver is None:
        start = time.perf_counter()
        fetch(port, path)
        return time.perf_counter() - start
    driver.get(f"http://127.0.0.1:{port}{path}")
    timing = driver.execute_script(
        "const t = performance.getEntriesByType('navigation')[0];"
        "return [t.startTime, t.loadEventEnd];"
    )
    return (timing[1] - timing[0]) / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db-file", type=Path, required=True, help="db.json of the database.")
    parser.add_argument("--element", default="Fe", help="Element of the filtered queries.")
    parser.add_argument("--seconds", type=float, default=20, help="Duration of each rate.")
    parser.add_argument("--repeats", type=int, default=5, help="Page loads per page.")
    args = parser.parse_args()

    port = free_port()
    config = DbConfig.load(args.db_file)
    config.ensure_server()
    server = start_server(args.db_file, port)
    try:
        counts = json.loads(fetch(port, "/api/health"))["counts"]
        print(
            f"machine: {platform.node()}, {psutil.cpu_count()} logical CPUs, "
            f"load average {', '.join(f'{x:.1f}' for x in psutil.getloadavg())}"
        )
        print(f"database: {config.host}:{config.port}/{config.database}; documents: {counts}")
        driver = browser()
        page = f"/?element={args.element}&sams_min=0.2"
        cold = load_time(driver, port, page)
        api = (
            f"/api/predictions/?model_id=latest&element={args.element}&sams_min=0.2"
            "&in_domain=true&_sort_fields=-sams&_limit=50"
        )
        matching = json.loads(fetch(port, api))["meta"]["total_doc"]
        print(f"filtered query: {api} ({matching} matching predictions)")
        for clients in (1, 4):
            rate = requests_per_second(port, api, args.seconds, clients)
            print(f"  REST API, {clients} client(s): {rate:.2f} requests/s")
        rate = requests_per_second(port, page, args.seconds, 1)
        print(f"  candidates page {page}, 1 client: {rate:.1f} requests/s")

        computed = "/api/xes/?state=successful&_sort_fields=-sams&_limit=1&_fields=record_key"
        top = json.loads(fetch(port, computed))["data"][0]  # a record page with its spectra
        model = json.loads(fetch(port, "/api/models/?_sort_fields=-last_updated&_limit=1"))
        pages = {
            "candidates (filtered)": page,
            "record (FEFF spectra)": "/records/" + quote(top["record_key"], safe=":"),
            "model": f"/model?model_id={model['data'][0]['model_id']}",
        }
        how = "headless Chromium, navigation start → load event" if driver else "HTML over HTTP"
        print(f"page load times ({how}; median of {args.repeats}):")
        print(f"  first candidates page after the start (reads the snapshot): {cold:.2f} s")
        for name, path in pages.items():
            load_time(driver, port, path)  # figures rendered once, then cached
            times = [load_time(driver, port, path) for _ in range(args.repeats)]
            print(f"  {name:22s} {statistics.median(times):.3f} s  ({path})")
        if driver is not None:
            driver.quit()
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
