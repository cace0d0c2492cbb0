"""Telemetry settings: metrics, traces and logs."""

from __future__ import annotations

from dataclasses import dataclass

from chat_service.envconfig import lower, upper, var


@dataclass(frozen=True)
class TelemetrySettings:
    metrics_port: int = var("METRICS_PORT", 9464)  # 0: no /metrics
    otel_service_name: str = var("OTEL_SERVICE_NAME", "chat-service")
    log_level: str = var("LOG_LEVEL", "INFO", upper)
    log_format: str = var("LOG_FORMAT", "json", lower)
