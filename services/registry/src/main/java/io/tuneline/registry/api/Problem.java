package io.tuneline.registry.api;

import com.fasterxml.jackson.annotation.JsonInclude;
import jakarta.ws.rs.core.MediaType;
import jakarta.ws.rs.core.Response;
import java.util.List;

/**
 * An RFC 9457 problem details body. {@code errors} lists every problem of an invalid request, each
 * naming the field it is in; {@code estimate} (an extension member) is the pre-flight estimate of a
 * job refused because it does not fit its device.
 */
@JsonInclude(JsonInclude.Include.NON_EMPTY)
public record Problem(
        String type,
        String title,
        int status,
        String detail,
        String instance,
        List<String> errors,
        Object estimate) {
    public static final MediaType MEDIA_TYPE = new MediaType("application", "problem+json");

    public static Response response(int status, String title, String detail, String instance) {
        return response(status, title, detail, instance, List.of());
    }

    public static Response response(
            int status, String title, String detail, String instance, List<String> errors) {
        return response(status, title, detail, instance, errors, null);
    }

    public static Response response(
            int status,
            String title,
            String detail,
            String instance,
            List<String> errors,
            Object estimate) {
        return Response.status(status)
                .type(MEDIA_TYPE)
                .entity(
                        new Problem(
                                "about:blank", title, status, detail, instance, errors, estimate))
                .build();
    }
}
