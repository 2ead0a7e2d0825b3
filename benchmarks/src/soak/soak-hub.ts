import { Hub, HubMethod } from "@switchboard/core";

/** The soak's hub: groups, sends to a group, and an echo for the latency probe. */
@Hub("/soak")
export class SoakHub extends Hub {
  @HubMethod()
  async Join(group: string): Promise<void> {
    await this.groups.add(this.context.connectionId, group);
  }

  @HubMethod()
  async Leave(group: string): Promise<void> {
    await this.groups.remove(this.context.connectionId, group);
  }

  /** Sends `seq` of the caller (its `sender` name) to `group`. */
  @HubMethod()
  async Send(group: string, sender: string, seq: number): Promise<void> {
    await this.clients.group(group).send("M", sender, seq);
  }

  @HubMethod()
  Echo(stamp: number): number {
    return stamp;
  }
}
