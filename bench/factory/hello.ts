// The factory benches' baseline server: a bare fastify in its own process with the two routes the benches
// call — GET /readyz answering "ok" and POST /schematics reading the body and answering one fixed JSON id
// (nothing parsed or stored). What it costs is node + fastify: the floor any route of ours pays.
//
//   node bench/factory/hello.ts 127.0.0.1:PORT
import Fastify from "fastify";

const [host, port] = (process.argv[2] ?? "").split(":");
if (host === undefined || port === undefined) throw new Error("usage: hello.ts HOST:PORT");
const app = Fastify({ logger: false });
// As the factory does (src/factory/app.ts): no body parsing by fastify, the route reads the raw request.
app.removeAllContentTypeParsers();
app.addContentTypeParser("*", (_request, _payload, done) => done(null, undefined));
const answer = JSON.stringify({ id: "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba" });
app.get("/readyz", async (_request, reply) => reply.type("text/plain; charset=utf-8").send("ok\n"));
app.post("/schematics", async (request, reply) => {
  let size = 0;
  for await (const chunk of request.raw) size += (chunk as Buffer).length;
  if (size === 0) return reply.code(400).send("empty body\n");
  return reply.code(201).type("application/json").send(answer);
});
await app.listen({ host, port: Number(port) });
