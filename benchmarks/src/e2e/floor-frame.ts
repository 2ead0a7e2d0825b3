import * as ws from "ws";
import { nowMicros, stamp } from "./stamp.js";

type FrameFunction = (data: Buffer, options: { fin: boolean; rsv1: boolean; opcode: number; mask: boolean; readOnly: boolean }) => Buffer[];
const frameOf = (ws as unknown as { Sender: { frame: FrameFunction } }).Sender.frame;
const RS = "\u001e";
const TEXT_FRAME = { fin: true, rsv1: false, opcode: 1, mask: false, readOnly: false };

/**
 * The floor's whole message for a round: the burst's SignalR JSON records (the bytes Switchboard
 * sends, stamped now) concatenated, framed once into ONE buffer that every member's socket gets.
 * Used by the raw floor and by the same-process comparison's floor loop.
 */
export function floorFrame(burst: number, round: number, payload: string): Buffer {
  const micros = nowMicros();
  let text = "";
  for (let i = 0; i < burst; i++) text += JSON.stringify({ type: 1, target: "m", arguments: [stamp(i === burst - 1, round, micros), payload] }) + RS;
  return Buffer.concat(frameOf(Buffer.from(text), TEXT_FRAME));
}
