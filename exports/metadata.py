"""XMP written into every export: IPTC DigitalSourceType (made by a trained model), the job key,
style, seed, model, model revision and the export fingerprint (``exports.fingerprint``:
everything that shaped the file).

Read back with ``PIL.Image.open(...).getxmp()``; JPEG, PNG (iTXt ``XML:com.adobe.xmp``), WebP
and AVIF all carry it.
"""

from __future__ import annotations

TRAINED_ALGORITHMIC_MEDIA = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
IPTC_EXT = "http://iptc.org/std/Iptc4xmpExt/2008-02-29/"
BRANDBATCH_NS = "urn:brandbatch:xmp:1.0/"


def xmp_packet(job_key: str, style: str, *, seed: int | None = None, model: str = "",
               model_revision: str | None = None, fingerprint: str = "") -> bytes:
    """A minimal XMP packet (UTF-8) naming the source type, the render's job key and style, and
    (when given) its seed, model, model revision and the file's export fingerprint."""
    from xml.sax.saxutils import quoteattr  # imports urllib.request: only when a file is made

    made = {"JobKey": job_key, "Style": style, "Seed": "" if seed is None else str(seed), "Model": model,
            "ModelRevision": model_revision or "", "ExportFingerprint": fingerprint}
    attributes = "".join(f" brandbatch:{name}={quoteattr(value)}" for name, value in made.items() if value)
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">'
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        f'<rdf:Description rdf:about="" xmlns:Iptc4xmpExt="{IPTC_EXT}" xmlns:brandbatch="{BRANDBATCH_NS}"'
        f' Iptc4xmpExt:DigitalSourceType="{TRAINED_ALGORITHMIC_MEDIA}"{attributes}/>'
        "</rdf:RDF></x:xmpmeta>"
        '<?xpacket end="w"?>'
    ).encode("utf-8")
