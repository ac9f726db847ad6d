"""The chat page: a real server process, its JSON API, and the page driven in headless Chromium."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from pipeline.model.loading import load_model
from pipeline.serving.generate import GenerationSettings, generate

ROOT = Path(__file__).resolve().parents[2]
PROMPT = "中国人"


@pytest.fixture(scope="module")
def model_dir(tiny_model_dir):
    return tiny_model_dir


@pytest.fixture(scope="module")
def server_url(model_dir):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen(
        [sys.executable, "-u", "-m", "pipeline", "chat", "--model", str(model_dir), "--port", "0", "--device", "cpu"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env,
    )
    try:
        line = process.stdout.readline()  # "chat page on http://127.0.0.1:PORT/ ..."
        assert line.startswith("chat page on http://"), line + process.stderr.read()
        yield line.split()[3]
    finally:
        process.terminate()
        process.wait(timeout=30)


def expected_greedy(model_dir: Path, max_new_tokens: int, repetition_penalty: float) -> str:
    model, tokenizer = load_model(model_dir, device="cpu", dtype="fp32")
    settings = GenerationSettings(
        strategy="greedy", max_new_tokens=max_new_tokens, repetition_penalty=repetition_penalty
    )
    return generate(model, tokenizer, PROMPT, settings)[0].text


def post(url: str, payload: dict) -> tuple[int, dict]:
    request = urllib.request.Request(
        url + "api/generate", data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_page_and_api(server_url, model_dir):
    with urllib.request.urlopen(server_url, timeout=30) as response:
        page = response.read().decode()
    assert (
        response.headers["Content-Type"].startswith("text/html")
        and 'id="prompt"' in page
        and "http" not in page.split("<script>")[1]
    )
    status, answer = post(
        server_url, {"prompt": PROMPT, "strategy": "greedy", "max_new_tokens": 10, "repetition_penalty": 1.3}
    )
    assert status == 200 and answer["continuations"][0]["text"] == expected_greedy(model_dir, 10, 1.3)
    status, sampled = post(
        server_url, {"prompt": PROMPT, "strategy": "sample", "seed": 5, "num_sequences": 2, "max_new_tokens": 8}
    )
    assert status == 200 and len(sampled["continuations"]) == 2
    assert (
        post(server_url, {"prompt": PROMPT, "strategy": "sample", "seed": 5, "num_sequences": 2, "max_new_tokens": 8})[
            1
        ]["continuations"]
        == sampled["continuations"]
    )
    status, error = post(server_url, {"prompt": PROMPT, "temperature": 0})
    assert status == 400 and "temperature" in error["error"]
    status, error = post(server_url, {"prompt": PROMPT, "colour": "blue"})
    assert status == 400 and "colour" in error["error"]


@pytest.mark.browser
def test_typing_a_prompt_in_headless_chromium(server_url, model_dir):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if chromium is None or driver_path is None:
        if os.environ.get("CI"):  # tests/run.sh installs them: in CI a missing browser is a failure
            pytest.fail("chromium/chromedriver missing although tests/run.sh installs them (launch/install_system.sh)")
        pytest.skip(
            "Debian's chromium and chromium-driver are not installed "
            "(apt-get install -y --no-install-recommends chromium chromium-driver)"
        )
    from selenium import webdriver
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.select import Select
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
    ):
        options.add_argument(flag)
    browser = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver_path))
    try:
        browser.get(server_url)
        browser.find_element(By.ID, "prompt").send_keys(PROMPT)
        Select(browser.find_element(By.ID, "strategy")).select_by_visible_text("greedy")
        tokens = browser.find_element(By.ID, "max_new_tokens")
        tokens.clear()
        tokens.send_keys("12")
        browser.find_element(By.ID, "send").click()
        WebDriverWait(browser, 60).until(expected_conditions.text_to_be_present_in_element((By.ID, "status"), "done"))
        continuation = browser.find_element(By.ID, "continuation").text
        answer = browser.find_element(By.ID, "answer").text
    finally:
        browser.quit()
    expected = expected_greedy(model_dir, 12, 1.1)  # the page's default repetition penalty
    assert continuation == expected.strip() and expected.strip()
    assert answer.startswith(PROMPT)
