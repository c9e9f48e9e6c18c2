"""XMP written into every export: IPTC DigitalSourceType (made by a trained model), the job key,
the style and the export fingerprint (``exports.fingerprint``: everything that shaped the file).

Read back with ``PIL.Image.open(...).getxmp()``; JPEG, PNG (iTXt ``XML:com.adobe.xmp``), WebP
and AVIF all carry it.
"""

from __future__ import annotations

from xml.sax.saxutils import quoteattr

TRAINED_ALGORITHMIC_MEDIA = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
IPTC_EXT = "http://iptc.org/std/Iptc4xmpExt/2008-02-29/"
BRANDBATCH_NS = "urn:brandbatch:xmp:1.0/"


def xmp_packet(job_key: str, style: str, fingerprint: str = "") -> bytes:
    """A minimal XMP packet (UTF-8) naming the source type, the render's job key, the style and
    (when given) the export fingerprint."""
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">'
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        f'<rdf:Description rdf:about="" xmlns:Iptc4xmpExt="{IPTC_EXT}" xmlns:brandbatch="{BRANDBATCH_NS}"'
        f' Iptc4xmpExt:DigitalSourceType="{TRAINED_ALGORITHMIC_MEDIA}"'
        f" brandbatch:JobKey={quoteattr(job_key)} brandbatch:Style={quoteattr(style)}"
        + (f" brandbatch:ExportFingerprint={quoteattr(fingerprint)}" if fingerprint else "")
        + "/>"
        "</rdf:RDF></x:xmpmeta>"
        '<?xpacket end="w"?>'
    ).encode("utf-8")
