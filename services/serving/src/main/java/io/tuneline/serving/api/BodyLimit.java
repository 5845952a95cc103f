package io.tuneline.serving.api;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.quarkus.runtime.configuration.MemorySize;
import io.quarkus.vertx.http.runtime.RouteConstants;
import io.vertx.ext.web.Router;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.Observes;
import org.eclipse.microprofile.config.inject.ConfigProperty;

/**
 * A body declared larger than {@code quarkus.http.limits.max-body-size} answered with a 413 problem
 * rather than Quarkus' bare 413: its own check ends the response with no body before any JAX-RS
 * mapper runs, so this one runs just before it (a body sent chunked, without a length, still meets
 * Quarkus' check).
 */
@ApplicationScoped
public class BodyLimit {

    void install(
            @Observes Router router,
            @ConfigProperty(name = "quarkus.http.limits.max-body-size") MemorySize max,
            ObjectMapper json) {
        router.route()
                .order(RouteConstants.ROUTE_ORDER_UPLOAD_LIMIT - 1)
                .handler(
                        ctx -> {
                            String length = ctx.request().getHeader("Content-Length");
                            if (length == null
                                    || !length.matches("\\d{1,18}")
                                    || Long.parseLong(length) <= max.asLongValue()) {
                                ctx.next();
                                return;
                            }
                            Problem problem =
                                    new Problem(
                                            "about:blank",
                                            "Request too large",
                                            413,
                                            "the body has "
                                                    + length
                                                    + " bytes; at most "
                                                    + max.asLongValue()
                                                    + " (quarkus.http.limits.max-body-size)",
                                            ctx.request().path());
                            String body;
                            try {
                                body = json.writeValueAsString(problem);
                            } catch (JsonProcessingException e) {
                                ctx.fail(e);
                                return;
                            }
                            // The body is not read: the connection closes after the answer.
                            ctx.response()
                                    .setStatusCode(413)
                                    .putHeader("Content-Type", Problem.MEDIA_TYPE.toString())
                                    .putHeader("Connection", "close")
                                    .end(body);
                        });
    }
}
