// Two builds:
//   vite build              the demo page (index.html + src/demo.ts) and embed.html (src/embed.ts,
//                           the README's Laravel embed) into dist/, served by the
//                           dev cluster through Envoy (same origin as the gRPC-Web endpoint)
//   vite build --mode lib   the library (ChatConnection, GroupChat, GroupList, generated types)
//                           into dist-lib/ for apps that bundle it themselves (Laravel + Vite)
import { fileURLToPath } from "node:url";
import vue from "@vitejs/plugin-vue";
import { defineConfig } from "vite";

const external = [
  "vue",
  /^@bufbuild\/protobuf(\/.*)?$/,
  /^@connectrpc\/connect(-web)?(\/.*)?$/,
];

export default defineConfig(({ mode }) => {
  if (mode === "lib") {
    return {
      plugins: [vue()],
      build: {
        outDir: "dist-lib",
        emptyOutDir: true,
        sourcemap: true,
        lib: {
          entry: fileURLToPath(new URL("./src/index.ts", import.meta.url)),
          formats: ["es"],
          fileName: () => "chat-web.js",
          cssFileName: "chat-web",
        },
        rollupOptions: { external },
      },
    };
  }
  return {
    plugins: [vue()],
    base: "./",
    build: {
      outDir: "dist",
      emptyOutDir: true,
      sourcemap: true,
      // embed.html: GroupChat mounted the way the README's Laravel section does (browser test).
      rollupOptions: {
        input: {
          index: fileURLToPath(new URL("./index.html", import.meta.url)),
          embed: fileURLToPath(new URL("./embed.html", import.meta.url)),
        },
      },
    },
    server: {
      // `npm run dev` against `make cluster`: CHAT_GATEWAY=http://127.0.0.1:PORT npm run dev
      proxy: process.env.CHAT_GATEWAY
        ? { "/chat.ChatService": { target: process.env.CHAT_GATEWAY, changeOrigin: true } }
        : undefined,
    },
  };
});
