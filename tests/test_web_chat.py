"""The web chat page at `/`, end to end in real headless Chromium (Debian's chromium and chromium-driver,
installed by the test set-up step): type, send, see the streamed answer and which model answered why."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import REPO, live_server, wait_healthy

from pz2.config import ServingConfig
from pz2.runtime.append_log import read_log
from pz2.runtime.assistant import Assistant
from pz2.serving.app import create_app

ARTEFACTS = REPO / "test-artefacts"
CHROMIUM, DRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    assert CHROMIUM.exists() and DRIVER.exists(), "the test set-up step (`make test`) installs chromium"
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1100,800"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(DRIVER)), options=options)  # no download: the driver is given
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def test_the_page_streams_an_answer_and_shows_the_route(serve_ws, browser) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    api = create_app(lambda: Assistant.from_config(serve_ws, serve_ws.model_config()), ServingConfig(), "tiny-base")
    with live_server(api) as url:
        wait_healthy(url)
        browser.get(url + "/")
        assert browser.title == "pz2 hybrid assistant"
        wait = WebDriverWait(browser, 60)

        def answered(n: int):
            def done(driver):
                routes = driver.find_elements(By.CSS_SELECTOR, ".assistant .route")
                return len(routes) == n and "route " in routes[-1].text and driver.find_element(By.ID, "send").is_enabled()
            return done

        box = browser.find_element(By.ID, "input")
        box.send_keys("hello, how are you?")
        box.send_keys(Keys.ENTER)
        wait.until(answered(1))
        first = browser.find_elements(By.CSS_SELECTOR, ".assistant")[-1]
        assert browser.find_element(By.CSS_SELECTOR, ".user").text == "hello, how are you?"
        assert first.find_element(By.CSS_SELECTOR, "span").text.strip(), "the streamed answer is on the page"
        assert "answered by unified model" in first.find_element(By.CSS_SELECTOR, ".route").text

        browser.find_element(By.ID, "expert").click()
        box.send_keys("How do I fix a Python ImportError?")
        browser.find_element(By.ID, "send").click()
        wait.until(answered(2))
        second = browser.find_elements(By.CSS_SELECTOR, ".assistant")[-1]
        route = second.find_element(By.CSS_SELECTOR, ".route").text
        assert "specialist" in route and "reason explicit_request" in route and "confidence" in route
        assert second.get_attribute("data-route") == "specialist"

        thumbs_down = second.find_element(By.CSS_SELECTOR, '.rate button[data-rating="bad"]')
        thumbs_down.click()                        # 👎: POST /v1/feedback with the answer's response id
        wait.until(lambda _: thumbs_down.get_attribute("aria-pressed") == "true")
        assert "thanks" in second.find_element(By.CSS_SELECTOR, ".rate").text
        logs = serve_ws.assistant_logs
        rating = read_log(logs / "feedback.jsonl")[-1]
        rated = next(r for r in read_log(logs / "decisions.jsonl") if r["id"] == rating["turn"])
        assert (rating["rating"], rating["how"]) == ("bad", "api")
        assert rated["question"] == "How do I fix a Python ImportError?" and rated["route"] == "specialist"

        ARTEFACTS.mkdir(exist_ok=True)
        shot = ARTEFACTS / "web_chat.png"
        assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000

        browser.find_element(By.ID, "new").click()
        assert browser.find_elements(By.CSS_SELECTOR, ".msg") == []
        box.send_keys("hi again")
        box.send_keys(Keys.ENTER)
        wait.until(answered(1))
        assert len(browser.find_elements(By.CSS_SELECTOR, ".user")) == 1, "a new chat starts empty"


def test_the_page_needs_no_network_beyond_the_server() -> None:
    """No CDN, no build step: the page is one file that references nothing outside the server."""
    from importlib import resources

    page = resources.files("pz2.serving").joinpath("static/index.html").read_text("utf-8")
    assert "http://" not in page and "https://" not in page and "<script src" not in page
