"""Ad-platform exports: placements, fit/crop, overlays, encoders with byte caps, manifests."""
