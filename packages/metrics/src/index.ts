export { SwitchboardMetrics, ASPNETCORE_METER, SWITCHBOARD_METER, type SwitchboardMetricsOptions } from "./switchboard-metrics.js";
