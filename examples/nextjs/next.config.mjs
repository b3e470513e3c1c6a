// Nothing meshwire-specific: no transpilePackages, no webpack/turbopack rules, no
// dynamic(ssr: false). The package imports safely on the server and loads its wasm
// in the browser on first use.
/** @type {import('next').NextConfig} */
const nextConfig = {};
export default nextConfig;
