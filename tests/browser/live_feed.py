"""The live feed in a real browser (Chromium, driven by Playwright): the demo page that
`cargo xtask dev` serves at /demo signs in with a local user token, a service posts a
notification through the API, and the badge changes without a reload; marking it read in the
page brings the badge and the API's count back together.

Run by `cargo xtask test` (and `cargo xtask browser`) against a running local stack:
HERALD_URL, HERALD_USER, HERALD_USER_TOKEN, HERALD_SERVICE_TOKEN, CHROMIUM and, optionally,
HERALD_SCREENSHOT (where to keep a picture of the page).
"""

import os
import time

from playwright.sync_api import sync_playwright

import browser_kit

URL = os.environ["HERALD_URL"]
USER = os.environ["HERALD_USER"]
USER_TOKEN = os.environ["HERALD_USER_TOKEN"]
SERVICE_TOKEN = os.environ["HERALD_SERVICE_TOKEN"]
# How long the page may take at most (a bound on the test's run; the time it took is printed).
BOUND_MS = 30_000


def api(method, path, token, body=None):
    return browser_kit.api(URL, method, path, token, body)


def badge(page):
    return int(page.get_attribute("herald-inbox", "data-count") or 0)


fail = browser_kit.fail


def main():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=os.environ["CHROMIUM"], args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1000, "height": 700})
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{URL}/demo#user={USER}&token={USER_TOKEN}")
        page.click("#sign-in")
        page.wait_for_selector("herald-inbox[data-status=open]", timeout=BOUND_MS)
        before = badge(page)
        if before != api("GET", f"/v1/users/{USER}/unread", USER_TOKEN)["total"]:
            fail(f"the badge shows {before} before anything happened, the API another count")

        # A service notifies the user; the page must show it without a reload.
        loads = []
        page.on("load", lambda _: loads.append(1))
        sent = time.monotonic()
        api("POST", "/v1/notifications", SERVICE_TOKEN, {"notifications": [{
            "user_id": USER, "room_id": "browser", "title": "Your order shipped",
            "body": "It arrives on Tuesday.", "channels": ["inbox"]}]})
        page.wait_for_function(
            f"Number(document.querySelector('herald-inbox').dataset.count) === {before + 1}",
            timeout=BOUND_MS)
        took = time.monotonic() - sent
        if loads:
            fail("the page reloaded")
        print(f"badge {before} -> {before + 1} {took:.2f} s after the POST, without a reload")

        # Read it in the page: the badge and the API agree.
        page.click("herald-inbox >> [part=bell]")
        page.click("herald-inbox >> li[data-room=browser] [data-testid=mark-read]")
        page.wait_for_function(
            f"Number(document.querySelector('herald-inbox').dataset.count) === {before}",
            timeout=BOUND_MS)
        counts = api("GET", f"/v1/users/{USER}/unread", USER_TOKEN)
        if counts["total"] != badge(page) or counts["rooms"].get("browser"):
            fail(f"after reading in the page the badge shows {badge(page)}, the API {counts}")
        print(f"read in the page: badge {badge(page)}, API total {counts['total']}")

        screenshot = os.environ.get("HERALD_SCREENSHOT")
        if screenshot:
            # The page as a reader sees it: a fresh message, the panel open.
            api("POST", "/v1/notifications", SERVICE_TOKEN, {"notifications": [{
                "user_id": USER, "room_id": "billing", "title": "Invoice #1042 is ready",
                "body": "€42.00, due on the 20th.", "channels": ["inbox"]}]})
            page.wait_for_function(
                f"Number(document.querySelector('herald-inbox').dataset.count) === {before + 1}",
                timeout=BOUND_MS)
            page.screenshot(path=screenshot)
            print(f"screenshot: {screenshot}")
        if errors:
            fail(f"errors in the page: {errors}")
        browser.close()


if __name__ == "__main__":
    main()
