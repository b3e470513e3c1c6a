// The async helpers' deadline (waitFor, findBy…): RTL's default of 1 s is a deadline
// for a fast machine; `make test` also runs while builds and browsers load the cores.
// Waits end as soon as their condition holds, so a long deadline costs nothing.
import { configure } from "@testing-library/react";

configure({ asyncUtilTimeout: 5000 });
