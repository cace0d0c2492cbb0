// Demo page: sign in with a JWT (pasted, or ?token=...), then the caller's groups and chat.
// gRPC-Web goes to ?server=URL, default: this page's own origin (Envoy serves both).
import { createApp } from "vue";

import DemoApp from "./DemoApp.vue";

createApp(DemoApp).mount("#app");
