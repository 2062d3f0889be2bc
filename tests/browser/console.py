"""The operator console in a real browser (Chromium, driven by Playwright), as an operator
who never saw curl uses it: sign in with a token, create a campaign from the page and watch
it reach done on its chart, schedule another and cancel it (the confirmation first refused
with Escape), redrive a poisoned message from its dead-letter queue, and look up what a
campaign did for one recipient. Along the way: every control has a label, a view's heading
takes focus, the keyboard reaches the navigation, the dialog starts on its safe button, and
the page logs no error (a Content-Security-Policy violation among them).

Run by `cargo xtask test` (and `cargo xtask browser`) against a running local stack on which
the xtask has dead-lettered one message: HERALD_URL, HERALD_SERVICE_TOKEN (every scope),
HERALD_POISON (the poisoned message's body), CHROMIUM and, optionally,
HERALD_CONSOLE_SCREENSHOTS (a folder for the pictures in docs/console.md).
"""

import datetime
import os
import time
import urllib.parse

from playwright.sync_api import sync_playwright

import browser_kit

URL = os.environ["HERALD_URL"]
TOKEN = os.environ["HERALD_SERVICE_TOKEN"]
POISON = os.environ["HERALD_POISON"]
SUPPRESSED = os.environ["HERALD_SUPPRESSED"]
SHOTS = os.environ.get("HERALD_CONSOLE_SCREENSHOTS")
# How long one step may take at most (a bound on the test's run, not a speed goal).
BOUND_MS = 60_000

# Every visible control must have an accessible name: a label, aria-label or its own text.
UNLABELLED = """() => [...document.querySelectorAll('input, select, textarea, button, a[href]')]
  .filter((el) => el.offsetParent !== null || el.type === 'checkbox')
  .filter((el) => {
    if (el.getAttribute('aria-label') || el.getAttribute('aria-labelledby')) return false;
    if (el.labels && el.labels.length) return false;
    if (['BUTTON', 'A'].includes(el.tagName)) return !el.textContent.trim();
    return true;
  })
  .map((el) => el.outerHTML.slice(0, 120))"""


def api(method, path, body=None):
    return browser_kit.api(URL, method, path, TOKEN, body)


fail = browser_kit.fail


def check_labels(page, where):
    missing = page.evaluate(UNLABELLED)
    if missing:
        fail(f"{where}: controls without a label: {missing}")


def check_heading_focused(page, text):
    page.wait_for_function(
        "(text) => document.activeElement && document.activeElement.tagName === 'H1'"
        " && document.activeElement.textContent.includes(text)", arg=text, timeout=BOUND_MS)


def shot(page, name):
    if SHOTS:
        page.evaluate("document.getElementById('status').textContent = ''")
        path = os.path.join(SHOTS, name)
        page.screenshot(path=path, full_page=True)
        print(f"screenshot: {path}")


def main():
    run = str(int(time.time()))
    # Two recipients with an address, so the campaign's email is sent and its chart moves.
    for user in ("ann", "bob"):
        api("PUT", f"/v1/users/{user}/contact", {"email": f"{user}@example.com"})
    # A third, whose address SES hard-bounced (the xtask put the bounce on the feedback queue).
    api("PUT", "/v1/users/cy/contact", {"email": SUPPRESSED})

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=os.environ["CHROMIUM"], args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1100, "height": 800})
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        # Failed requests the test makes on purpose (a bad field) log "Failed to load
        # resource"; anything else logged as an error (a CSP violation among them) fails.
        page.on("console", lambda m: errors.append(m.text)
                if m.type == "error" and not m.text.startswith("Failed to load resource") else None)

        # Signed out, the page asks for a token, and its field is labelled.
        page.goto(f"{URL}/console")
        page.wait_for_selector("h1:has-text('Sign in')")
        check_labels(page, "sign in")
        page.get_by_label("Token", exact=True).fill(TOKEN)
        page.get_by_role("button", name="Use this token").click()
        check_heading_focused(page, "Campaigns")

        # The keyboard: on a fresh load, the first Tab reaches the skip link, then the sections.
        page.reload()
        page.wait_for_selector("h1:has-text('Campaigns')")
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent") != "Skip to content":
            fail("the first Tab does not reach the skip link")
        reached = []
        for _ in range(6):
            page.keyboard.press("Tab")
            reached.append(page.evaluate("document.activeElement.textContent.trim()"))
        for section in ("Campaigns", "Dead letters", "Look up"):
            if section not in reached:
                fail(f"Tab never reaches {section}: {reached}")

        # Create a campaign from the page and watch it reach done.
        page.get_by_role("link", name="New campaign").click()
        check_heading_focused(page, "New campaign")
        check_labels(page, "new campaign")
        name = f"winter-{run}"
        page.get_by_label("Name", exact=True).fill(name)
        page.get_by_label("Title", exact=True).fill("Winter sale")
        page.get_by_label("Body", exact=True).fill("30% off everything")
        page.get_by_label("email", exact=True).check()
        page.get_by_label("User ids, one a line").fill("ann\nbob")
        page.get_by_role("button", name="Create campaign").click()
        check_heading_focused(page, f"Campaign {name}")
        page.wait_for_selector("dl.facts .badge.done", timeout=BOUND_MS)
        page.wait_for_function(
            "document.querySelector('figure.chart svg').getAttribute('aria-label').includes('sent 2')",
            timeout=BOUND_MS)
        committed = page.locator("tr", has_text="Committed (in the inbox)").locator("td").inner_text()
        if committed != "2":
            fail(f"the progress table shows {committed} committed, not 2")
        check_labels(page, "campaign page")
        shot(page, "console-campaign.png")
        print(f"campaign {name}: done, 2 committed, 2 emails sent, on its chart")
        campaign_url = page.url

        # A bad field is named on the page, on its control.
        page.goto(f"{URL}/console#/campaigns/new")
        check_heading_focused(page, "New campaign")
        page.get_by_label("Name", exact=True).fill(f"bad-{run}")
        page.get_by_label("Title", exact=True).fill("x")
        page.get_by_label("Body", exact=True).fill("x")
        page.get_by_label("User ids, one a line").fill("ann\nnot valid")
        page.get_by_role("button", name="Create campaign").click()
        page.wait_for_selector("[role=alert].error", timeout=BOUND_MS)
        invalid = page.get_by_label("User ids, one a line")
        if invalid.get_attribute("aria-invalid") != "true" or not invalid.evaluate("el => el === document.activeElement"):
            fail("the refused field is not marked invalid and focused")

        # Schedule another for tomorrow, then cancel it: Escape keeps it, confirming cancels.
        later = f"later-{run}"
        page.get_by_label("Name", exact=True).fill(later)
        page.get_by_label("User ids, one a line").fill("ann\nbob")
        page.get_by_label("At a time").check()
        tomorrow = (datetime.datetime.now() + datetime.timedelta(days=1)).strftime("%Y-%m-%dT09:00")
        page.get_by_label("Send at", exact=True).fill(tomorrow)
        page.get_by_role("button", name="Create campaign").click()
        check_heading_focused(page, f"Campaign {later}")
        page.wait_for_selector("dl.facts .badge.scheduled", timeout=BOUND_MS)
        page.get_by_role("button", name="Cancel campaign").click()
        page.wait_for_selector("dialog#confirm[open]")
        if page.evaluate("document.activeElement.id") != "confirm-keep":
            fail("the confirmation does not start on its safe button")
        shot(page, "console-cancel.png")
        page.keyboard.press("Escape")
        page.wait_for_selector("dialog#confirm", state="hidden")
        if api("GET", "/v1/campaigns?limit=5")["campaigns"][0]["status"] != "scheduled":
            fail("Escape cancelled the campaign")
        page.get_by_role("button", name="Cancel campaign").click()
        page.locator("#confirm-ok").click()
        page.wait_for_selector("dl.facts .badge.cancelled", timeout=BOUND_MS)
        print(f"campaign {later}: scheduled, kept on Escape, cancelled on confirmation")

        page.get_by_role("link", name="All campaigns").click()
        check_heading_focused(page, "Campaigns")
        page.wait_for_selector(f"text={later}")
        shot(page, "console-campaigns.png")

        # Dead letters: the poisoned message is listed with its reason, and redriven.
        page.get_by_role("link", name="Dead letters").click()
        check_heading_focused(page, "Dead letters")
        deadline = time.monotonic() + BOUND_MS / 1000
        while page.locator("tr", has_text="notifications").locator("td").nth(1).inner_text() == "0":
            if time.monotonic() > deadline:
                fail("the poisoned message never shows in the notifications DLQ")
            time.sleep(1)
            page.get_by_role("button", name="Refresh").click()
        check_labels(page, "dead letters")
        page.get_by_role("link", name="notifications").click()
        check_heading_focused(page, "Dead letters: notifications")
        row = page.locator("tr", has_text="not a notification")
        row.locator("summary").first.click()
        if POISON.split('"')[1] not in row.locator("pre").first.inner_text():
            fail("the listed message is not the poisoned one")
        check_labels(page, "a dead-letter queue")
        row.locator("input[type=checkbox]").first.check()
        shot(page, "console-dead-letters.png")
        page.get_by_role("button", name="Redrive 1 selected").click()
        page.locator("#confirm-ok").click()
        page.wait_for_selector("p.result:has-text('Moved 1 message back to the notifications queue.')",
                               timeout=BOUND_MS)
        print("dead letters: the poisoned message was listed with its reason and redriven")

        # Look up what the first campaign did for ann.
        page.goto(campaign_url)
        check_heading_focused(page, f"Campaign {name}")
        page.get_by_label("User id", exact=True).fill("ann")
        page.get_by_role("button", name="Look up recipient").click()
        check_heading_focused(page, "Look up")
        email = page.locator("tr", has=page.locator("th", has_text="email"))
        email.locator(".badge.sent").wait_for(timeout=BOUND_MS)
        page.wait_for_selector("text=ann@example.com", timeout=BOUND_MS)
        check_labels(page, "look up")
        shot(page, "console-lookup.png")
        print("look up: ann's email for the campaign is sent; her contact is shown")

        # cy's address bounced: the look-up shows the suppression, and Remove lifts it.
        user_form = page.locator("form", has=page.get_by_role("button", name="Look up user"))
        remove = page.get_by_role("button", name=f"Remove the suppression of {SUPPRESSED}")
        deadline = time.monotonic() + BOUND_MS / 1000
        while True:
            user_form.get_by_label("User id", exact=True).fill("cy")
            user_form.get_by_role("button", name="Look up user").click()
            # This look-up answered (and no other is pending): then what it shows is current.
            user_form.locator("h3, [role=alert]").first.wait_for(timeout=BOUND_MS)
            if remove.is_visible():
                break
            if time.monotonic() > deadline:
                fail(f"the bounce of {SUPPRESSED} never shows as a suppression")
            time.sleep(1)
        shot(page, "console-suppression.png")
        remove.click()
        page.locator("#confirm-ok").click()
        try:
            page.wait_for_selector("text=None of the user's addresses is suppressed.", timeout=BOUND_MS)
        except Exception:
            fail("after Remove, the page shows: " + page.inner_text("main")[-600:]
                 + " | status: " + page.inner_text("#status"))
        found = api("GET", "/v1/suppressions?address=" + urllib.parse.quote(SUPPRESSED))
        if found["suppressed"] or not found["removals"]:
            fail(f"the console's Remove did not lift the suppression: {found}")
        print(f"look up: {SUPPRESSED}'s bounce was listed and removed, the removal on record")

        if errors:
            fail(f"the page logged errors: {errors}")
        browser.close()


main()
