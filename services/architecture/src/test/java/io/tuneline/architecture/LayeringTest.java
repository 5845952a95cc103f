package io.tuneline.architecture;

import static com.tngtech.archunit.lang.syntax.ArchRuleDefinition.noClasses;
import static com.tngtech.archunit.library.dependencies.SlicesRuleDefinition.slices;

import com.tngtech.archunit.core.importer.ImportOption;
import com.tngtech.archunit.junit.AnalyzeClasses;
import com.tngtech.archunit.junit.ArchTest;
import com.tngtech.archunit.lang.ArchRule;

/** The layering of docs/architecture.md, checked on the compiled classes of every module. */
@AnalyzeClasses(packages = "io.tuneline", importOptions = ImportOption.DoNotIncludeTests.class)
class LayeringTest {

    @ArchTest
    static final ArchRule servicesNeverDependOnEachOther =
            slices().matching(
                            "io.tuneline.(ingestion|preprocessing|training|evaluation|registry|serving)..")
                    .should()
                    .notDependOnEachOther()
                    .because("services share only common, engine and proto; they talk over Kafka");

    @ArchTest
    static final ArchRule librariesDoNotDependOnServices =
            noClasses()
                    .that()
                    .resideInAnyPackage("io.tuneline.common..", "io.tuneline.proto..")
                    .should()
                    .dependOnClassesThat()
                    .resideInAnyPackage(
                            "io.tuneline.ingestion..",
                            "io.tuneline.preprocessing..",
                            "io.tuneline.training..",
                            "io.tuneline.evaluation..",
                            "io.tuneline.registry..",
                            "io.tuneline.serving..");

    @ArchTest
    static final ArchRule jobRulesDoNotReachForAdapters =
            noClasses()
                    .that()
                    .resideInAnyPackage("io.tuneline.common.job..")
                    .should()
                    .dependOnClassesThat()
                    .resideInAnyPackage(
                            "org.apache.kafka..",
                            "io.smallrye.reactive.messaging..",
                            "org.eclipse.microprofile.reactive.messaging..",
                            "jakarta.ws.rs..",
                            "io.minio..")
                    .because("domain rules are plain code a test can call without Kafka or S3");
}
