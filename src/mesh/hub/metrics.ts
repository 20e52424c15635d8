/**
 * The hub's Prometheus text (format 0.0.4): clients, refusals and drops by reason, relayed
 * traffic. Aggregates only: no per-key label, so a scrape reveals no client's identity.
 */
import type { Hub } from './hub.ts';
import { Federation } from './federation.ts';

export function renderHubMetrics(hub: Hub, uptimeSeconds: number): string {
  const c = hub.counters;
  const out: string[] = [];
  const metric = (name: string, type: 'counter' | 'gauge', help: string, samples: [string, number][]) => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [labels, value] of samples) out.push(`${name}${labels ? `{${labels}}` : ''} ${value}`);
  };
  metric('wireweave_hub_clients', 'gauge', 'Clients connected with a proven key.', [['', hub.clientCount]]);
  metric('wireweave_hub_pending_clients', 'gauge', 'Connections that have not proven a key yet.', [['', hub.pendingCount]]);
  metric('wireweave_hub_hello_refused_total', 'counter', 'Connections refused before or at the hello, by reason.',
    Object.entries(c.refused).map(([reason, n]) => [`reason="${reason}"`, n]));
  metric('wireweave_hub_dropped_frames_total', 'counter', 'Frames dropped, by reason.',
    Object.entries(c.drops).map(([reason, n]) => [`reason="${reason}"`, n]));
  metric('wireweave_hub_replaced_total', 'counter', 'Connections replaced by a newer one with the same key.', [['', c.replaced]]);
  metric('wireweave_hub_frames_total', 'counter', 'Signals and relayed datagrams received from clients.',
    [['kind="signal"', c.signals], ['kind="packet"', c.packets]]);
  metric('wireweave_hub_relayed_bytes_total', 'counter', 'Payload bytes delivered to a client here or forwarded to another hub.', [['', c.relayedBytes]]);
  metric('wireweave_hub_forwarded_total', 'counter', 'Frames forwarded to another hub.', [['', c.forwarded]]);
  metric('wireweave_hub_announcements_total', 'counter', 'Discovery announcements accepted.', [['', c.announcements]]);
  const f = hub.federation;
  if (f instanceof Federation) {
    metric('wireweave_hub_federation_up', 'gauge', '1 while the hub reaches the fleet (NATS); 0 while it serves local clients only.', [['', f.up ? 1 : 0]]);
    metric('wireweave_hub_federation_remote_keys', 'gauge', 'Keys known to be connected at other hubs.', [['', f.presenceCount]]);
    metric('wireweave_hub_federation_queued_frames', 'gauge', 'Frames waiting to be published to other hubs.', [['', f.queuedFrames]]);
    metric('wireweave_hub_federation_frames_total', 'counter', 'Frames sent to and received from other hubs.',
      [['direction="out"', f.counters.sent], ['direction="in"', f.counters.received]]);
    metric('wireweave_hub_federation_dropped_total', 'counter', 'Frames or registry entries the federation dropped, by reason.',
      Object.entries(f.counters.drops).map(([reason, n]) => [`reason="${reason}"`, n]));
  }
  metric('wireweave_hub_uptime_seconds', 'gauge', 'Seconds since the hub started.', [['', Math.round(uptimeSeconds)]]);
  return out.join('\n') + '\n';
}
