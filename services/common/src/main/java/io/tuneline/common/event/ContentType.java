package io.tuneline.common.event;

import java.util.Locale;
import java.util.Optional;

/** How an event payload is encoded on the wire. */
public enum ContentType {
    /** The protobuf JSON mapping: the default, so plain clients such as kcat can publish. */
    JSON("application/json"),
    /** Binary protobuf, for producers that prefer compact records. */
    PROTOBUF("application/protobuf");

    private final String mediaType;

    ContentType(String mediaType) {
        this.mediaType = mediaType;
    }

    public String mediaType() {
        return mediaType;
    }

    /**
     * Parses a {@code content-type} header value. Parameters such as {@code ;charset=utf-8} are
     * ignored; the protobuf aliases in common use are accepted.
     */
    public static Optional<ContentType> parse(String header) {
        String base = header.split(";", 2)[0].trim().toLowerCase(Locale.ROOT);
        return switch (base) {
            case "application/json", "text/json" -> Optional.of(JSON);
            case "application/protobuf",
                    "application/x-protobuf",
                    "application/vnd.google.protobuf" ->
                    Optional.of(PROTOBUF);
            default -> Optional.empty();
        };
    }
}
