/**
 * The demo page in headless Chromium (Debian's `chromium`, driven by playwright-core): rooms,
 * names, member counts, the JSON/MessagePack switch and reloads, with the official browser client
 * bundles served by the demo itself.
 *
 * Without Chromium the suite is skipped with a warning, except under CI=true, where it fails.
 * Every run saves test/screenshots/chat-demo.png; `UPDATE_DOCS_SCREENSHOT=1` also refreshes the
 * README's docs/chat-demo.png (not on every run: connection ids and times change the image).
 */
import "reflect-metadata";
import { existsSync } from "node:fs";
import { copyFile, mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { startChatApp, type ChatApp } from "../src/app.js";
import { MemoryLogger } from "../../../test-support/harness.js";
import { CutProxy } from "../../../test-support/cut-proxy.js";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
  "--disable-quic",
];
const here = dirname(fileURLToPath(import.meta.url));
const SCREENSHOT = join(here, "screenshots", "chat-demo.png");
const DOCS_SCREENSHOT = join(here, "..", "..", "..", "docs", "chat-demo.png");

const haveChromium = existsSync(CHROMIUM);
const mustRun = process.env.CI === "true";
if (!haveChromium && !mustRun) {
  console.warn(`examples/chat: skipping the browser test, no Chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH).`);
}

type Protocol = "json" | "messagepack";

describe.skipIf(!haveChromium && !mustRun)("the chat demo page in headless Chromium", () => {
  const logger = new MemoryLogger();
  let app: ChatApp | undefined;
  let profile: string | undefined;
  let browser: BrowserContext | undefined;
  const pages: Page[] = [];
  const pageErrors: string[] = [];

  beforeAll(async () => {
    if (!haveChromium) return; // under CI=true: every test fails in beforeEach
    app = await startChatApp(0, "127.0.0.1", { logger });
    profile = await mkdtemp(join(tmpdir(), "switchboard-chromium-"));
    // One context on a fresh profile, one tab per user: tabs of one context open about three times
    // faster than a context each. They share localStorage, but the page keeps its name per tab.
    browser = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      args: CHROMIUM_ARGS,
      headless: true,
      viewport: { width: 1100, height: 700 },
    });
  });

  beforeEach(() => {
    if (!haveChromium) throw new Error(`CI=true but there is no Chromium at ${CHROMIUM}: the browser test cannot run.`);
  });

  afterEach(async () => {
    await Promise.allSettled(pages.splice(0).map((page) => page.close()));
    expect(pageErrors.splice(0)).toEqual([]);
  });

  afterAll(async () => {
    await browser?.close();
    await app?.close();
    if (profile !== undefined) await rm(profile, { recursive: true, force: true });
    expect(logger.entries.filter((entry) => entry.level === "error")).toEqual([]);
  });

  // Users type and press Enter. Clicks go to the tab in front (bringToFront), as for a person:
  // Chromium paints no frames in background tabs, and Playwright waits for one before clicking.

  /** A new user: a new page (tab), loaded (from `port`, default the app's) and connected. */
  async function openChat(protocol?: Protocol, port = app!.port): Promise<Page> {
    const page = await browser!.newPage();
    pages.push(page);
    page.on("pageerror", (error) => pageErrors.push(error.message));
    await page.goto(`http://127.0.0.1:${port}/${protocol === undefined ? "" : `?protocol=${protocol}`}`);
    await connectionId(page, protocol ?? "json");
    return page;
  }

  /** Waits until the page is connected over `protocol` and returns the connection id it shows. */
  async function connectionId(page: Page, protocol: Protocol = "json"): Promise<string> {
    await page.locator(`#status[data-state="online"][data-protocol="${protocol}"]`).waitFor();
    const id = await page.locator("#connection-id").textContent();
    expect(id).toMatch(/^[\w-]{16,}$/);
    return id!;
  }

  async function setName(page: Page, name: string): Promise<void> {
    await page.fill("#name", name);
    await page.press("#name", "Enter");
    await expect.poll(() => page.evaluate("sessionStorage.getItem('switchboard.name')")).toBe(name);
  }

  async function joinRoom(page: Page, room: string): Promise<void> {
    await page.fill("#join-room", room);
    await page.press("#join-room", "Enter");
    await page.locator(`#rooms li.active[data-room="${room}"]`).waitFor();
  }

  async function say(page: Page, text: string): Promise<void> {
    await page.fill("#text", text);
    await page.press("#text", "Enter");
    await expect.poll(() => page.inputValue("#text")).toBe("");
  }

  const texts = (page: Page) => page.locator("#messages li .text").allTextContents();
  const authors = (page: Page) => page.locator("#messages li .author").allTextContents();
  const memberCount = (page: Page, room: string) => page.locator(`#rooms li[data-room="${room}"] .count`).textContent();

  it("shows a room message to the room's members, with the sender's name, and not to a page outside the room", async () => {
    const [alice, bob, carol] = await Promise.all([openChat(), openChat(), openChat()]);
    await setName(alice, "Alice");
    await setName(bob, "Bob");
    await joinRoom(alice, "random");
    await joinRoom(alice, "lobby");
    await joinRoom(bob, "lobby");
    await joinRoom(carol, "random");

    await expect.poll(() => memberCount(alice, "lobby")).toBe("2");
    await expect.poll(() => memberCount(alice, "random")).toBe("2");
    await expect.poll(() => alice.locator("#room-members").textContent()).toBe("2 members");

    await say(bob, "Hi! Is this really the SignalR protocol?");
    await say(alice, "Byte for byte, from the official browser client.");
    await say(alice, "Markup stays text: <b>not bold</b> & <script>alert(1)</script>");
    const conversation = ["Hi! Is this really the SignalR protocol?", "Byte for byte, from the official browser client.", "Markup stays text: <b>not bold</b> & <script>alert(1)</script>"];
    await expect.poll(() => texts(bob)).toEqual(conversation);
    await expect.poll(() => texts(alice)).toEqual(conversation);
    expect(await authors(bob)).toEqual(["Bob (you)", "Alice", "Alice"]);
    expect(await bob.locator("#messages b, #messages script").count()).toBe(0);

    // Carol is connected and in a room of her own, but not in #lobby.
    await say(carol, "anyone in random?");
    await expect.poll(() => texts(alice)).toEqual(conversation); // Alice looks at #lobby
    await expect.poll(() => alice.locator('#rooms li.unread[data-room="random"]').count()).toBe(1);
    expect(await texts(carol)).toEqual(["anyone in random?"]);
    expect(await carol.locator("#messages").textContent()).not.toContain("SignalR");

    await mkdir(dirname(SCREENSHOT), { recursive: true });
    await alice.bringToFront();
    await alice.screenshot({ path: SCREENSHOT });
    if (process.env.UPDATE_DOCS_SCREENSHOT === "1") {
      await mkdir(dirname(DOCS_SCREENSHOT), { recursive: true });
      await copyFile(SCREENSHOT, DOCS_SCREENSHOT);
    }

    await bob.bringToFront();
    await bob.click('#rooms li[data-room="lobby"] .leave');
    await expect.poll(() => memberCount(alice, "lobby")).toBe("1");
    await expect.poll(() => bob.locator("#rooms li").count()).toBe(0);
  });

  it("works the same over MessagePack, from the switch or the URL, next to JSON pages", async () => {
    const [alice, bob, dave, carol] = await Promise.all([openChat(), openChat("messagepack"), openChat("json"), openChat("messagepack")]);
    await joinRoom(alice, "lobby");
    const jsonId = await connectionId(alice, "json");

    // Record Alice's WebSocket frames from the switch on: MessagePack invocations are binary.
    const binaryFrames: Buffer[] = [];
    alice.on("websocket", (socket) => {
      socket.on("framesent", (frame) => typeof frame.payload !== "string" && binaryFrames.push(frame.payload));
      socket.on("framereceived", (frame) => typeof frame.payload !== "string" && binaryFrames.push(frame.payload));
    });
    await alice.bringToFront();
    await alice.check('input[name="protocol"][value="messagepack"]');
    const messagePackId = await connectionId(alice, "messagepack");
    expect(messagePackId).not.toBe(jsonId);
    expect(alice.url()).toContain("protocol=messagepack");

    await joinRoom(bob, "lobby");
    await joinRoom(dave, "lobby");
    await joinRoom(carol, "elsewhere");
    await expect.poll(() => memberCount(alice, "lobby")).toBe("3"); // Alice's new connection joined #lobby again

    await say(alice, "packed: ünïcödé ✓");
    for (const member of [alice, bob, dave]) await expect.poll(() => texts(member)).toEqual(["packed: ünïcödé ✓"]);
    await say(dave, "and JSON");
    for (const member of [alice, bob, dave]) await expect.poll(() => texts(member)).toEqual(["packed: ünïcödé ✓", "and JSON"]);
    expect(await texts(carol)).toEqual([]);
    expect(binaryFrames.some((payload) => payload.includes(Buffer.from("packed: ünïcödé ✓")))).toBe(true);
  });

  it.each(["json", "messagepack"] as const)("rides out a network blip (%s): shows reconnecting, keeps its connection id and rooms, loses no message", async (protocol) => {
    const proxy = await CutProxy.start(app!.port);
    try {
      const [alice, bob] = await Promise.all([openChat(protocol, proxy.port), openChat()]);
      await joinRoom(alice, `blip-${protocol}`);
      await joinRoom(bob, `blip-${protocol}`);
      await expect.poll(() => memberCount(bob, `blip-${protocol}`)).toBe("2");
      const id = await connectionId(alice, protocol);

      // The TCP connection drops; Alice's reattach is held while Bob talks.
      proxy.hold();
      proxy.cut();
      await alice.locator('#status[data-state="connecting"]').waitFor();
      expect(await alice.locator("#status-text").textContent()).toBe("Reconnecting…");
      await expect.poll(() => proxy.heldCount).toBeGreaterThan(0);
      await say(bob, "while you were away 1");
      await say(bob, "while you were away 2");
      expect(await memberCount(bob, `blip-${protocol}`)).toBe("2");

      proxy.release();
      expect(await connectionId(alice, protocol)).toBe(id);
      await expect.poll(() => texts(alice)).toEqual(["while you were away 1", "while you were away 2"]);
      await say(alice, "back, nothing lost");
      await expect.poll(() => texts(bob)).toEqual(["while you were away 1", "while you were away 2", "back, nothing lost"]);
      expect(await memberCount(bob, `blip-${protocol}`)).toBe("2");
    } finally {
      await proxy.close();
    }
  });

  it("gets a new connection id on reload, and its rooms come back (rejoin token kept in sessionStorage)", async () => {
    const [alice, bob] = await Promise.all([openChat(), openChat()]);
    await joinRoom(alice, "lobby");
    await joinRoom(bob, "lobby");
    await expect.poll(() => memberCount(alice, "lobby")).toBe("2");
    const before = await connectionId(bob);

    await bob.reload();
    const after = await connectionId(bob);
    expect(after).not.toBe(before);
    await bob.locator('#rooms li[data-room="lobby"]').waitFor();
    expect(await bob.locator("#rejoined").getAttribute("data-rooms")).toBe(JSON.stringify(["lobby"]));
    expect(await bob.locator("#rejoined").textContent()).toBe("Rooms back: #lobby");
    await expect.poll(() => memberCount(alice, "lobby")).toBe("2");
    await say(bob, "still here");
    await expect.poll(() => texts(alice)).toEqual(["still here"]);
  });

  it("a named user's rooms are persisted: a new tab with the same name starts in them", async () => {
    const first = await openChat();
    await setName(first, "Persisted Pat");
    await joinRoom(first, "pat-room");
    const second = await openChat();
    expect(await second.locator("#rooms li").count()).toBe(0);
    await setName(second, "Persisted Pat");
    await second.locator('#rooms li[data-room="pat-room"]').waitFor();
    expect(await second.locator("#rejoined").getAttribute("data-rooms")).toBe(JSON.stringify(["pat-room"]));
    await expect.poll(() => memberCount(first, "pat-room")).toBe("2");
  });

  it("rooms survive a server restart: the page reconnects and shows them coming back", async () => {
    const page = await openChat();
    await joinRoom(page, "restart-room");
    const before = await connectionId(page);
    const port = app!.port;
    await app!.close();
    app = await startChatApp(port, "127.0.0.1", { logger });
    await expect.poll(() => page.locator("#connection-id").textContent(), { timeout: 15_000 }).not.toBe(before);
    await connectionId(page);
    expect(await page.locator("#rejoined").getAttribute("data-rooms")).toBe(JSON.stringify(["restart-room"]));
    const other = await openChat();
    await joinRoom(other, "restart-room");
    await expect.poll(() => memberCount(page, "restart-room")).toBe("2");
    await say(other, "after the restart");
    await expect.poll(() => texts(page)).toEqual(["after the restart"]);
  });
});
