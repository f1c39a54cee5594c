"""The Heatmap edge agent: runs beside the YOLO pipeline on a Jetson (Python 3.8+,
numpy and paho-mqtt only), keeps 15-minute slot aggregates and publishes them to central."""

__all__: list = []
