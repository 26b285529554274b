"""The workbench in a real browser: headless Chromium (Debian's chromium and chromium-driver)
driven by Selenium. Skipped, with the reason, where either is missing."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest

from workbench_sources import LEAK

CHROMIUM, DRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (the 'test' extra)")
uvicorn = pytest.importorskip("uvicorn", reason="uvicorn is not installed (the 'serve' extra)")
if not (CHROMIUM.exists() and DRIVER.exists()):
    pytest.skip(f"no headless browser: {CHROMIUM} and {DRIVER} come from Debian's chromium and "
                "chromium-driver packages (apt-get install chromium chromium-driver)", allow_module_level=True)

from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from kdsl.workbench.app import create_app  # noqa: E402
from kdsl.workbench.session import Session  # noqa: E402


@pytest.fixture
def page(workspace):
    """The workbench on a free loopback port, opened in headless Chromium."""
    data, rules = workspace
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(Session(data, rules)), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.05)
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1300,1000"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(str(DRIVER)), options=options)
    try:
        driver.get(f"http://127.0.0.1:{port}/")
        yield driver, rules
    finally:
        driver.quit()
        server.should_exit = True
        thread.join(10)


def text_of(driver, element_id, expected, timeout=15):
    WebDriverWait(driver, timeout).until(lambda d: d.find_element(By.ID, element_id).text == expected)


def replace_source(driver, source):
    """Type ``source`` into the editor as a user would (select all, then type), cursor on line 6."""
    editor = driver.find_element(By.ID, "editor")
    editor.click()
    driver.execute_script("arguments[0].select()", editor)
    editor.send_keys(source)
    driver.execute_script("const e = arguments[0]; const at = e.value.split('\\n').slice(0, 5).join('\\n').length + 1;"
                          "e.setSelectionRange(at, at); e.dispatchEvent(new KeyboardEvent('keyup'));", editor)


def test_typing_a_rule_updates_hits_shows_diagnostics_and_saves(page):
    driver, rules = page
    WebDriverWait(driver, 15).until(lambda d: d.find_element(By.ID, "editor").get_attribute("value") == LEAK)
    driver.execute_script("const e = arguments[0]; const at = e.value.indexOf('when user');"
                          "e.focus(); e.setSelectionRange(at, at); e.dispatchEvent(new KeyboardEvent('keyup'));",
                          driver.find_element(By.ID, "editor"))
    text_of(driver, "hits", "1")  # leak: only 底下漏水了
    edited = LEAK.replace('when user has "漏水" and', 'when user has any("漏水", "渗水") and')
    replace_source(driver, edited)
    text_of(driver, "hits", "4")
    assert driver.find_element(By.ID, "fixes").text == "2" and driver.find_element(By.ID, "breaks").text == "1"
    assert "渗水" in [m.text for m in driver.find_elements(By.CSS_SELECTOR, "#rows mark")]

    replace_source(driver, edited.replace("when user has any", "when usr has any"))
    WebDriverWait(driver, 15).until(
        lambda d: "unknown field 'usr'" in d.find_element(By.ID, "diagnostics").text)
    assert driver.find_element(By.ID, "hits").text == "–"
    assert driver.find_elements(By.CSS_SELECTOR, "#gutter .bad")[0].text == "6"
    driver.find_element(By.ID, "save").click()
    WebDriverWait(driver, 15).until(lambda d: d.find_element(By.ID, "status").text.startswith("not saved"))
    assert (rules / "leak.kdsl").read_text(encoding="utf-8") == LEAK

    replace_source(driver, edited.replace('rule drain: intent = "排水"', 'rule drain:intent="排水"'))
    text_of(driver, "hits", "4")
    driver.find_element(By.ID, "save").click()
    text_of(driver, "status", "saved leak.kdsl")
    assert (rules / "leak.kdsl").read_text(encoding="utf-8") == edited  # formatted back
    assert driver.find_element(By.ID, "editor").get_attribute("value") == edited
    assert sorted(p.name for p in rules.iterdir()) == ["leak.kdsl", "other.kdsl"]
