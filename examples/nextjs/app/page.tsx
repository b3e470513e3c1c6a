// A server component: rendered on the server, it hands the relay URL to the client
// component below (which the server renders too: the hooks are SSR-safe).
import { Call } from "./call";

export default async function Page({ searchParams }: { searchParams: Promise<{ relay?: string }> }) {
  const { relay } = await searchParams;
  return <Call relay={relay ?? process.env.MESHWIRE_URL ?? "ws://localhost:8080"} />;
}
