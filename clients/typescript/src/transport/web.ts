/**
 * Browser transports: `@connectrpc/connect-web`, unmodified. Connect with the
 * binary protobuf codec is the default (unary calls are plain POSTs, server
 * streams are `fetch` streams); gRPC-Web is there for proxies that only pass it.
 */
import type { Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-web";

export interface WebTransportOptions {
  /** e.g. `http://127.0.0.1:9090` (edge-grpc) or `http://127.0.0.1:9091` (push-hub). */
  readonly baseUrl: string;
  readonly protocol?: "connect" | "grpc-web";
  /** JSON instead of binary protobuf (readable in devtools; larger). */
  readonly json?: boolean;
}

export function webTransport(options: WebTransportOptions): Transport {
  const common = { baseUrl: options.baseUrl, useBinaryFormat: !options.json };
  return options.protocol === "grpc-web" ? createGrpcWebTransport(common) : createConnectTransport(common);
}
