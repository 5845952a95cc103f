package io.tuneline.registry.api;

import jakarta.inject.Inject;
import jakarta.ws.rs.container.ContainerRequestContext;
import jakarta.ws.rs.core.HttpHeaders;
import jakarta.ws.rs.core.Response;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.util.Optional;
import java.util.Set;
import org.jboss.resteasy.reactive.server.ServerRequestFilter;

/**
 * Writes under {@code /api/} need {@code Authorization: Bearer <token>}; reads too when {@code
 * tuneline.registry.protect-reads} is set. The token is compared in constant time and never logged
 * or echoed.
 */
public class BearerTokenFilter {
    private static final Set<String> READS = Set.of("GET", "HEAD", "OPTIONS");

    private final RegistryConfig config;

    @Inject
    public BearerTokenFilter(RegistryConfig config) {
        this.config = config;
    }

    @ServerRequestFilter
    public Optional<Response> authorize(ContainerRequestContext request) {
        String path = request.getUriInfo().getPath();
        if (!path.startsWith("/api/")) {
            return Optional.empty();
        }
        boolean read = READS.contains(request.getMethod());
        if (read && !config.protectReads()) {
            return Optional.empty();
        }
        String header = request.getHeaderString(HttpHeaders.AUTHORIZATION);
        if (header == null || !header.regionMatches(true, 0, "Bearer ", 0, 7)) {
            return Optional.of(
                    unauthorized(
                            path,
                            "this endpoint needs an 'Authorization: Bearer <token>' header; the"
                                    + " token is tuneline.registry.api-token (REGISTRY_API_TOKEN in"
                                    + " clusters)"));
        }
        byte[] given = header.substring(7).trim().getBytes(StandardCharsets.UTF_8);
        byte[] expected = config.apiToken().getBytes(StandardCharsets.UTF_8);
        if (!MessageDigest.isEqual(given, expected)) {
            return Optional.of(unauthorized(path, "the bearer token is not valid"));
        }
        return Optional.empty();
    }

    private static Response unauthorized(String path, String detail) {
        Response problem = Problem.response(401, "Unauthorized", detail, path);
        return Response.fromResponse(problem)
                .header(HttpHeaders.WWW_AUTHENTICATE, "Bearer realm=\"tuneline\"")
                .build();
    }
}
