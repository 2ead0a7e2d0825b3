import { Hub, HubError } from "@switchboard/core";

/** What the server can call on a chat client. */
export interface ChatClient {
  Message(fromConnectionId: string, text: string): void;
}

/** The demo hub: echo, identity, and messages to everyone, the others, one connection or a room. */
@Hub("/hubs/chat")
export class ChatHub extends Hub<ChatClient> {
  Echo(value: unknown): unknown {
    return value;
  }

  WhoAmI(): string {
    return this.context.connectionId;
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

  async Join(group: string): Promise<number> {
    await this.groups.add(this.context.connectionId, checkGroup(group));
    return this.groups.count(group);
  }

  async Leave(group: string): Promise<number> {
    await this.groups.remove(this.context.connectionId, checkGroup(group));
    return this.groups.count(group);
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
}

const MAX_TEXT = 4_000;

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
