"""URLs of the course-outline example (see ``courses.views``)."""

from django.urls import path

from courses import views

urlpatterns = [
    path("", views.index, name="index"),
    path("courses/<str:course_id>/", views.outline_page, name="outline"),
    path("courses/<str:course_id>/publish", views.publish, name="publish"),
    path("api/courses/<str:course_id>/outline", views.outline_json, name="outline-json"),
    path("api/courses/<str:course_id>/version", views.course_version, name="course-version"),
    path("api/enrollments/<str:username>", views.enrollments, name="enrollments"),
    path("edge/entries", views.edge_entries, name="edge-entries"),
    path("_demo/counters", views.demo_counters, name="demo-counters"),
    path("healthz", views.healthz, name="healthz"),
]
