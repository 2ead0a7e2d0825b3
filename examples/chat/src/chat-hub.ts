import { Hub, HubError } from "@switchboard/core";

/** What the server can call on a chat client. */
export interface ChatClient {
  /** A message from `fromConnectionId`, sent by the Send* methods. */
  Message(fromConnectionId: string, text: string): void;
  /** A message said in `room` (by `Say`); `fromName` is the sender's chosen name, or null. */
  RoomMessage(room: string, fromConnectionId: string, fromName: string | null, text: string): void;
  /** `room` now has `count` members: sent to the room whenever someone joins, leaves or disconnects. */
  RoomCount(room: string, count: number): void;
}

/** `context.items` keys: the chosen name, and the rooms joined (membership ends before `onDisconnected`). */
const kName = Symbol("chat.name");
const kRooms = Symbol("chat.rooms");

/**
 * The demo hub: echo, identity, messages to everyone, the others, one connection or a room, and
 * what the demo page uses — a chosen name, `Say` in a room, and member counts per room.
 */
@Hub("/hubs/chat")
export class ChatHub extends Hub<ChatClient> {
  Echo(value: unknown): unknown {
    return value;
  }

  WhoAmI(): string {
    return this.context.connectionId;
  }

  /** Sets the name shown with this connection's `RoomMessage`s; `""` clears it. Returns the name kept. */
  SetName(name: string): string {
    const kept = checkName(name);
    if (kept === "") this.context.items.delete(kName);
    else this.context.items.set(kName, kept);
    return kept;
  }

  async SendToAll(text: string): Promise<void> {
    await this.clients.all.send("Message", this.context.connectionId, checkText(text));
  }

  async SendToOthers(text: string): Promise<void> {
    await this.clients.others.send("Message", this.context.connectionId, checkText(text));
  }

  async SendToConnection(connectionId: string, text: string): Promise<void> {
    await this.clients.client(connectionId).send("Message", this.context.connectionId, checkText(text));
  }

  /**
   * A new connection may start in rooms already (a rejoin token, or the rooms persisted for its
   * user): remember them for onDisconnected and tell those rooms their new count.
   */
  override async onConnected(): Promise<void> {
    const rooms = this.groups.groupsOf(this.context.connectionId);
    for (const room of rooms) {
      this.#rooms().add(room);
      await this.clients.group(room).send("RoomCount", room, await this.#count(room));
    }
  }

  /** Members of `room` on every server (with Redis), or on this one when the cluster cannot answer. */
  #count(room: string): Promise<number> {
    return this.groups.cluster.count(room).catch(() => this.groups.count(room));
  }

  /**
   * Joins `group`, tells its members (the caller included) the new `RoomCount`, and returns it.
   * A named user's rooms are persisted, so their next connection (another tab, a reload, after a
   * restart) starts in them.
   */
  async Join(group: string): Promise<number> {
    await this.groups.add(this.context.connectionId, checkGroup(group), { persist: this.context.userIdentifier !== null });
    this.#rooms().add(group);
    const count = await this.#count(group);
    await this.clients.group(group).send("RoomCount", group, count);
    return count;
  }

  /** Leaves `group`, tells the members left the new `RoomCount`, and returns it. */
  async Leave(group: string): Promise<number> {
    await this.groups.remove(this.context.connectionId, checkGroup(group), { persist: this.context.userIdentifier !== null });
    this.#rooms().delete(group);
    const count = await this.#count(group);
    await this.clients.group(group).send("RoomCount", group, count);
    return count;
  }

  /** Sends `RoomMessage` to every member of `room`; only members may speak in it. */
  async Say(room: string, text: string): Promise<void> {
    const { connectionId } = this.context;
    if (!this.groups.has(checkGroup(room), connectionId)) throw new HubError(`Join '${room}' before speaking in it.`);
    const name = this.context.items.get(kName);
    await this.clients.group(room).send("RoomMessage", room, connectionId, typeof name === "string" ? name : null, checkText(text));
  }

  async SendToGroup(group: string, text: string): Promise<void> {
    await this.clients.group(checkGroup(group)).send("Message", this.context.connectionId, checkText(text));
  }

  async SendToOthersInGroup(group: string, text: string): Promise<void> {
    await this.clients.othersInGroup(checkGroup(group)).send("Message", this.context.connectionId, checkText(text));
  }

  async SendToGroupExcept(group: string, connectionIds: string[], text: string): Promise<void> {
    if (!Array.isArray(connectionIds) || !connectionIds.every((id) => typeof id === "string")) {
      throw new HubError("connectionIds must be an array of strings.");
    }
    await this.clients.groupExcept(checkGroup(group), connectionIds).send("Message", this.context.connectionId, checkText(text));
  }

  /** The connection has already left its groups here, so the rooms it was in come from `items`. */
  override async onDisconnected(): Promise<void> {
    const rooms = this.context.items.get(kRooms);
    if (!(rooms instanceof Set)) return;
    for (const room of rooms as Set<string>) {
      await this.clients.group(room).send("RoomCount", room, await this.#count(room));
    }
  }

  #rooms(): Set<string> {
    let rooms = this.context.items.get(kRooms) as Set<string> | undefined;
    if (rooms === undefined) this.context.items.set(kRooms, (rooms = new Set()));
    return rooms;
  }
}

const MAX_TEXT = 4_000;
const MAX_NAME = 32;

function checkText(text: unknown): string {
  if (typeof text !== "string") throw new HubError("The message must be a string.");
  if (text.length > MAX_TEXT) throw new HubError(`The message is longer than ${MAX_TEXT} characters.`);
  return text;
}

function checkGroup(group: unknown): string {
  if (typeof group !== "string" || group.length === 0 || group.length > 100) {
    throw new HubError("The room name must be 1 to 100 characters.");
  }
  return group;
}

/** Trims and collapses whitespace (control characters included), so a name fits on one line. */
function checkName(name: unknown): string {
  if (typeof name !== "string") throw new HubError("The name must be a string.");
  const kept = name.replace(/[\s\p{Cc}]+/gu, " ").trim();
  if (kept.length > MAX_NAME) throw new HubError(`The name is longer than ${MAX_NAME} characters.`);
  return kept;
}
