"""What every crawl client does with a page, as ignareo's `crawler` plugin does: decode it as
UTF-8 and keep its title (whitespace collapsed), so that all of them do the same work."""


def title(body):
    text = body.decode("utf-8")
    lower = text.lower()
    start = lower.find("<title")
    if start < 0:
        return ""
    start = lower.find(">", start) + 1
    end = lower.find("</title", start)
    if start == 0 or end < 0:
        return ""
    return " ".join(text[start:end].split())
