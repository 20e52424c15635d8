/**
 * Counters: every packet the stack drops is counted under a reason, never thrown. The names
 * are listed up front so a dump shows zeros too, and so a typo is a type error.
 */
const COUNTER_NAMES = [
  // IP
  'ipReceived', 'ipMalformed', 'ipBadChecksum', 'ipNotForUs', 'ipUnknownProtocol', 'ipUnsupportedExtension', 'ipNoNextHeader',
  'ipSent', 'ipTooBig',
  // fragments
  'fragmentsReceived', 'fragmentsReassembled', 'fragmentsOverlap', 'fragmentsTimedOut', 'fragmentsEvicted',
  'fragmentsTooBig', 'fragmentsSent',
  // ICMP
  'icmpReceived', 'icmpMalformed', 'icmpBadChecksum', 'icmpEchoAnswered', 'icmpEchoReplies', 'icmpErrorsReceived',
  'icmpUnhandled', 'icmpUnreachableSent', 'icmpErrorsRateLimited',
  // UDP
  'udpReceived', 'udpMalformed', 'udpBadChecksum', 'udpNoSocket', 'udpSent', 'udpSendDropped',
  // TCP
  'tcpReceived', 'tcpMalformed', 'tcpBadChecksum', 'tcpBadFlags', 'tcpNoSocket', 'tcpRstSent',
  'tcpSynBacklogFull', 'tcpSynBacklogEvicted', 'tcpConnectionLimit', 'tcpOutOfWindow', 'tcpBadAck',
  'tcpAckTooNew', 'tcpNoAck', 'tcpChallengeAck', 'tcpChallengeAckLimited', 'tcpPawsRejected', 'tcpRstReceived', 'tcpRstIgnored', 'tcpSynInWindow',
  'tcpDataAfterClose', 'tcpDataAfterFin', 'tcpBeyondWindow', 'tcpOutOfOrder', 'tcpOutOfOrderDropped', 'tcpDuplicate',
  'tcpSegmentsSent', 'tcpRetransmits', 'tcpFastRetransmits', 'tcpLossProbes', 'tcpRtoExpired', 'tcpTimeouts',
  'tcpZeroWindowProbes', 'tcpKeepaliveProbes', 'tcpDelayedAcks', 'tcpActiveOpens', 'tcpPassiveOpens',
  'tcpTimeWaitReused', 'tcpSynAckGiveUp', 'tcpSackBlocksReceived', 'tcpIcmpUnreachable',
  // TCP memory budget (tcp/memory-budget.ts): tcpMemoryInUse and tcpMemoryPeak are bytes (gauges)
  'tcpMemoryInUse', 'tcpMemoryPeak', 'tcpMemoryPressureEvents', 'tcpMemoryRefused', 'tcpWindowClamps',
  'tcpSendBufferClamps', 'tcpMemoryDrops', 'tcpReceiveBufferGrown', 'tcpSendBufferGrown',
  // a bug caught at the API edge (never a bad packet)
  'internalErrors',
] as const;

export type CounterName = typeof COUNTER_NAMES[number];

export type Counters = Record<CounterName, number> & Record<string, number>;

export function newCounters(): Counters {
  const c = {} as Record<string, number>;
  for (const n of COUNTER_NAMES) c[n] = 0;
  return c as Counters;
}
