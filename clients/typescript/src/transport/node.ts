/**
 * Node transports: `@connectrpc/connect-node`. Connect over HTTP/2 cleartext
 * by default; native gRPC for parity with grpcio clients; HTTP/1.1 Connect for
 * proxies without h2c.
 */
import type { Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";

export interface NodeTransportOptions {
  /** e.g. `http://127.0.0.1:9090`. */
  readonly baseUrl: string;
  readonly protocol?: "connect" | "grpc" | "grpc-web";
  readonly httpVersion?: "1.1" | "2";
  readonly json?: boolean;
}

export function nodeTransport(options: NodeTransportOptions): Transport {
  const useBinaryFormat = !options.json;
  if (options.protocol === "grpc") return createGrpcTransport({ baseUrl: options.baseUrl, useBinaryFormat });
  const httpVersion = options.httpVersion ?? "2";
  if (options.protocol === "grpc-web") {
    return createGrpcWebTransport({ baseUrl: options.baseUrl, httpVersion, useBinaryFormat });
  }
  return createConnectTransport({ baseUrl: options.baseUrl, httpVersion, useBinaryFormat });
}
